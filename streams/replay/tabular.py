"""Table-shaped recordings: CSV (plain or gzip) and Parquet, with a column mapping.

``--csv-map ts=time,account_id=acct`` says which column holds which contract field; a
column named exactly like a field is used without being mapped. Cells are converted to the
field's JSON type (integers for counts and status, booleans, a list for ``flags``), empty
cells are left out, and each row becomes one JSON event that the replay loop validates like
any other - a cell that does not convert stays a string and is reported with its line.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from streams.records import RequestEvent
from streams.replay.batch import FileSource, RawBatch, listed_positions
from streams.replay.errors import ReplayError
from streams.replay.jsonl import open_maybe_gzip

__all__ = [
    "BOOL_FIELDS", "EVENT_FIELDS", "INT_FIELDS", "LIST_FIELDS", "REQUIRED_FIELDS", "CsvSource",
    "ParquetSource", "parse_column_map", "resolve_columns",
]

EVENT_FIELDS: tuple[str, ...] = RequestEvent.__struct_fields__
REQUIRED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in msgspec.structs.fields(RequestEvent) if f.required)
INT_FIELDS = frozenset({"status", "prompt_tokens", "completion_tokens", "asn", "reasoning_tokens",
                        "latency_ms"})
BOOL_FIELDS = frozenset({"logprobs", "logit_bias"})
LIST_FIELDS = frozenset({"flags"})
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
_encode = msgspec.json.Encoder().encode


def parse_column_map(text: str | None) -> dict[str, str]:
    """``field=column,...`` into ``{field: column}``.

    >>> parse_column_map("ts=time, account_id=acct")
    {'ts': 'time', 'account_id': 'acct'}
    >>> parse_column_map("tss=time")
    Traceback (most recent call last):
    ...
    streams.replay.errors.ReplayError: --csv-map: 'tss' is not an event field (fields: event_id, ts, ...)
    """
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise ReplayError(f"--csv-map: {part!r} is not FIELD=COLUMN")
        if field not in EVENT_FIELDS:
            raise ReplayError(f"--csv-map: {field!r} is not an event field "
                              f"(fields: {', '.join(EVENT_FIELDS[:2])}, ...)")
        if field in mapping:
            raise ReplayError(f"--csv-map: {field!r} is mapped twice")
        mapping[field] = column
    return mapping


def resolve_columns(name: str, columns: list[str], mapping: Mapping[str, str]) -> list[tuple[str, int]]:
    """``[(field, column index)]``: the mapping, plus columns named like a field.

    >>> resolve_columns("x.csv", ["time", "acct", "model"], {"ts": "time"})
    Traceback (most recent call last):
    ...
    streams.replay.errors.ReplayError: x.csv: no column for required field(s) event_id, account_id, api_key_id, endpoint, status, prompt_tokens, completion_tokens; map them with --csv-map FIELD=COLUMN (columns: time, acct, model)
    """
    index = {c: i for i, c in enumerate(columns)}
    have = ", ".join(columns)
    out: list[tuple[str, int]] = []
    for field, column in mapping.items():
        if column not in index:
            raise ReplayError(f"{name}: --csv-map {field}={column}: no column {column!r} (columns: {have})")
        out.append((field, index[column]))
    for field in EVENT_FIELDS:
        if field not in mapping and field in index:
            out.append((field, index[field]))
    missing = [f for f in REQUIRED_FIELDS if f not in {f for f, _ in out}]
    if missing:
        raise ReplayError(f"{name}: no column for required field(s) {', '.join(missing)}; map them "
                          f"with --csv-map FIELD=COLUMN (columns: {have})")
    return out


def _to_int(cell: Any) -> Any:
    if isinstance(cell, bool):
        return cell
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float):
        return int(cell) if cell.is_integer() else cell
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        number = float(cell)
    except ValueError:
        return cell          # the validator reports it, with the line
    return int(number) if number.is_integer() else cell


def _to_ts(cell: Any) -> Any:
    value = _to_int(cell)
    return value if isinstance(value, int) else cell     # RFC 3339 text stays text


def _to_bool(cell: Any) -> Any:
    if isinstance(cell, str):
        low = cell.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return cell


def _to_list(cell: Any) -> Any:
    if isinstance(cell, str):
        text = cell.strip()
        if text.startswith("["):
            try:
                return msgspec.json.decode(text)
            except msgspec.DecodeError:
                return cell
        return [f.strip() for f in text.split(";") if f.strip()]
    return cell


def _keep(cell: Any) -> Any:
    return cell


def converter(field: str) -> Callable[[Any], Any]:
    """How a cell becomes the JSON value of ``field``.

    >>> converter("status")("429"), converter("ts")("1700000000000"), converter("ts")("2024-01-01T00:00:00Z")
    (429, 1700000000000, '2024-01-01T00:00:00Z')
    >>> converter("prompt_tokens")("12.0"), converter("logprobs")("TRUE"), converter("flags")("cot_request; x")
    (12, True, ['cot_request', 'x'])
    >>> converter("prompt_tokens")("many")    # left for the validator to reject
    'many'
    """
    if field == "ts":
        return _to_ts
    if field in INT_FIELDS:
        return _to_int
    if field in BOOL_FIELDS:
        return _to_bool
    if field in LIST_FIELDS:
        return _to_list
    return _keep


class CsvSource(FileSource):
    """Events from a CSV file (header row first; ``.csv.gz`` works too)."""

    unit = "bytes"

    def __init__(self, path: str | Path, mapping: Mapping[str, str] | None = None, *,
                 max_batch: int = 5000, delimiter: str = ",") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ReplayError(f"{path}: no such file")
        self.mapping = dict(mapping or {})
        self.max_batch = max_batch
        self.delimiter = delimiter
        self._total = float(self.path.stat().st_size)
        self._open: list[Any] = []

    def batches(self) -> Iterator[RawBatch]:
        stream, raw = open_maybe_gzip(self.path)
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        self._open = [text, stream, raw]
        name = self.name
        try:
            reader = csv.reader(text, delimiter=self.delimiter)
            try:
                header = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ReplayError(f"{name}:1: cannot read the CSV header: {exc}") from None
            plan = [(f, i, converter(f)) for f, i in resolve_columns(name, header, self.mapping)]
            values: list[bytes] = []
            lines: list[int] = []
            rejects: list[tuple[str, str]] = []
            next_line = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:   # e.g. a NUL byte or a huge field: report, go on
                    rejects.append((f"{name}:{next_line}", f"bad_csv: {exc}"))
                    next_line = reader.line_num + 1
                    continue
                line, next_line = next_line, reader.line_num + 1
                if not row:
                    continue
                width = len(row)
                event = {f: conv(row[i]) for f, i, conv in plan if i < width and row[i] != ""}
                values.append(_encode(event))
                lines.append(line)
                if len(values) >= self.max_batch:
                    yield RawBatch(values, listed_positions(name, lines), float(raw.tell()),
                                   tuple(rejects))
                    values, lines, rejects = [], [], []
            if values or rejects:
                yield RawBatch(values, listed_positions(name, lines), float(raw.tell()),
                               tuple(rejects))
        finally:
            self.close()

    def close(self) -> None:
        opened, self._open = self._open, []
        for f in opened:
            f.close()


class ParquetSource(FileSource):
    """Events from a Parquet file (needs the ``parquet`` extra: pyarrow).

    Timestamp columns become epoch ms; a timestamp without a time zone is taken as UTC.
    """

    unit = "rows"

    def __init__(self, path: str | Path, mapping: Mapping[str, str] | None = None, *,
                 max_batch: int = 5000) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ReplayError("reading Parquet needs pyarrow: "
                              "pip install 'extraction-watch[parquet]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ReplayError(f"{path}: no such file")
        self.mapping = dict(mapping or {})
        self.max_batch = max_batch
        try:
            self._file = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends
            raise ReplayError(f"{path}: not a Parquet file ({exc})") from None
        self._total = float(self._file.metadata.num_rows)

    def batches(self) -> Iterator[RawBatch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        name = self.name
        columns = list(self._file.schema_arrow.names)
        plan = [(f, columns[i], converter(f)) for f, i in resolve_columns(name, columns, self.mapping)]
        wanted = sorted({c for _, c, _ in plan})
        row = 0
        try:
            for rb in self._file.iter_batches(batch_size=self.max_batch, columns=wanted):
                cols: dict[str, list[Any]] = {}
                for c in wanted:
                    col = rb.column(rb.schema.get_field_index(c))
                    if pa.types.is_timestamp(col.type):
                        col = pc.cast(pc.cast(col, pa.timestamp("ms", tz=col.type.tz)), pa.int64())
                    cols[c] = col.to_pylist()
                n = rb.num_rows
                values = []
                for r in range(n):
                    event = {}
                    for f, c, conv in plan:
                        cell = cols[c][r]
                        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
                            continue
                        event[f] = conv(cell)
                    values.append(_encode(event))
                positions = list(range(row + 1, row + n + 1))
                row += n
                yield RawBatch(values, listed_positions(name, positions, "row "), float(row))
        finally:
            self.close()

    def close(self) -> None:
        pass
