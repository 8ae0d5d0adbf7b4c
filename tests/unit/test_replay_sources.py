"""Replay sources: JSON Lines (plain, gzip), CSV with a column mapping, Parquet."""

from __future__ import annotations

import builtins
import gzip
from pathlib import Path

import msgspec
import pytest

from streams.records import EventDecoder, RequestEvent
from streams.replay.errors import ReplayError
from streams.replay.jsonl import JsonLinesSource
from streams.replay.tabular import (
    BOOL_FIELDS,
    EVENT_FIELDS,
    INT_FIELDS,
    LIST_FIELDS,
    REQUIRED_FIELDS,
    CsvSource,
    ParquetSource,
    parse_column_map,
)

T0 = 1_700_000_000_000


def event(i: int, **over: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "event_id": f"e{i}", "ts": T0 + i * 1000, "account_id": f"a{i % 3}", "api_key_id": "k",
        "model": "m", "endpoint": "/v1/chat/completions", "status": 200, "prompt_tokens": 10,
        "completion_tokens": 20}
    ev.update(over)
    return ev


def lines_of(n: int) -> list[bytes]:
    return [msgspec.json.encode(event(i)) for i in range(n)]


def collect(source: JsonLinesSource | CsvSource | ParquetSource) -> list[tuple[str, bytes]]:
    return [(b.locate(i), v) for b in source.batches() for i, v in enumerate(b.values)]


def test_jsonl_plain_and_gzip_give_the_same_values_and_line_numbers(tmp_path: Path) -> None:
    body = b"\n".join(lines_of(50)) + b"\n"
    plain, packed = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    plain.write_bytes(body)
    packed.write_bytes(gzip.compress(body))
    a, b = collect(JsonLinesSource(plain)), collect(JsonLinesSource(packed))
    assert [v for _, v in a] == [v for _, v in b] == lines_of(50)
    assert [w for w, _ in a] == [f"{plain}:{i}" for i in range(1, 51)]
    assert [w for w, _ in b] == [f"{packed}:{i}" for i in range(1, 51)]


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    path.write_bytes(gzip.compress(b"\n".join(lines_of(3))))
    assert [v for _, v in collect(JsonLinesSource(path))] == lines_of(3)


def test_line_numbers_stay_exact_across_chunks_blank_lines_and_crlf(tmp_path: Path) -> None:
    rows = lines_of(40)
    body = b""
    expected = []
    line = 0
    for i, r in enumerate(rows):
        line += 1
        body += r + (b"\r\n" if i % 2 else b"\n")
        expected.append((line, r))
        if i % 7 == 0:      # a blank line now and then: skipped, but it counts as a line
            body += b"\n"
            line += 1
    path = tmp_path / "x.jsonl"
    path.write_bytes(body)
    # tiny chunks: lines straddle chunk boundaries; tiny batches: a chunk is split in several
    got = collect(JsonLinesSource(path, chunk_bytes=37, max_batch=3))
    assert got == [(f"{path}:{n}", r) for n, r in expected]


def test_last_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines_of(3)))
    assert len(collect(JsonLinesSource(path))) == 3


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no such file"):
        JsonLinesSource(tmp_path / "nope.jsonl")


def test_progress_reaches_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines_of(200))))
    src = JsonLinesSource(path, chunk_bytes=1000)
    batches = list(src.batches())
    assert batches[-1].progress == src.total == path.stat().st_size


# --- CSV ----------------------------------------------------------------------------------

CSV = """\
id,time,acct,key,model,endpoint,status,in,out,logprobs,flags,asn
e1,1700000000000,a1,k1,m,/v1/x,200,10,20,true,cot_request;x,64500
e2,2023-11-14T22:13:21Z,a2,k2,m,/v1/x,429,0,0,,,
e3,1700000002000,a1,k1,m,"/v1/x
multi-line",200,5.0,7,no,"[""a""]",
e4,1700000003000,a1,k1,m,/v1/x,200,lots,7,,,
"""
MAP = "event_id=id,ts=time,account_id=acct,api_key_id=key,prompt_tokens=in,completion_tokens=out"


def test_csv_mapping_converts_types_and_keeps_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(CSV)
    got = collect(CsvSource(path, parse_column_map(MAP)))
    assert [w for w, _ in got] == [f"{path}:{n}" for n in (2, 3, 4, 6)]   # row 3 spans 2 lines
    first, second, third, fourth = (msgspec.json.decode(v) for _, v in got)
    assert first == {"event_id": "e1", "ts": 1700000000000, "account_id": "a1", "api_key_id": "k1",
                     "model": "m", "endpoint": "/v1/x", "status": 200, "prompt_tokens": 10,
                     "completion_tokens": 20, "logprobs": True, "flags": ["cot_request", "x"],
                     "asn": 64500}
    assert second["ts"] == "2023-11-14T22:13:21Z" and second["status"] == 429
    assert "logprobs" not in second and "asn" not in second          # empty cells left out
    assert third["prompt_tokens"] == 5 and third["logprobs"] is False and third["flags"] == ["a"]
    assert fourth["prompt_tokens"] == "lots"                          # left for the validator
    decoder = EventDecoder()
    verdicts = [decoder.decode(v) for _, v in got]
    assert [type(x).__name__ for x in verdicts] == ["RequestEvent", "RequestEvent", "RequestEvent",
                                                    "Rejection"]
    assert verdicts[1].ts == 1700000001000


def test_csv_gzip_and_unmapped_columns_named_like_fields(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    header = ",".join(REQUIRED_FIELDS)
    row = "e1,1700000000000,a,k,m,/v1/x,200,1,2"
    path.write_bytes(gzip.compress(f"{header}\n{row}\n".encode()))
    (loc, value), = collect(CsvSource(path))
    assert loc == f"{path}:2"
    assert isinstance(EventDecoder().decode(value), RequestEvent)


def test_csv_missing_required_column_names_what_to_map(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("time,acct\n1,a\n")
    with pytest.raises(ReplayError, match=r"no column for required field\(s\) event_id, ts, account_id"):
        list(CsvSource(path).batches())
    with pytest.raises(ReplayError, match="no column 'tme'"):
        list(CsvSource(path, {"ts": "tme"}).batches())


def test_column_map_syntax_errors() -> None:
    assert parse_column_map(None) == {}
    with pytest.raises(ReplayError, match="not an event field"):
        parse_column_map("time=ts")
    with pytest.raises(ReplayError, match="is not FIELD=COLUMN"):
        parse_column_map("ts")
    with pytest.raises(ReplayError, match="mapped twice"):
        parse_column_map("ts=a,ts=b")


def test_conversion_tables_match_the_event_struct() -> None:
    """If RequestEvent gains a numeric/bool/list field, the CSV converter must learn it."""
    info = msgspec.inspect.type_info(RequestEvent)
    kinds: dict[str, set[str]] = {}
    for f in info.fields:
        t = f.type
        types = t.types if isinstance(t, msgspec.inspect.UnionType) else (t,)
        kinds[f.name] = {type(x).__name__ for x in types} - {"NoneType"}
    assert set(EVENT_FIELDS) == set(kinds)
    assert INT_FIELDS == {n for n, k in kinds.items() if k == {"IntType"}}
    assert BOOL_FIELDS == {n for n, k in kinds.items() if k == {"BoolType"}}
    assert LIST_FIELDS == {n for n, k in kinds.items() if k == {"ListType"}}
    assert kinds["ts"] == {"IntType", "DateTimeType"}


# --- Parquet --------------------------------------------------------------------------------

def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ReplayError, match=r"pip install 'extraction-watch\[parquet\]'"):
        ParquetSource(tmp_path / "x.parquet")


def test_parquet_rows_with_mapping_and_timestamp_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import datetime as dt

    utc = dt.UTC
    table = pa.table({
        "id": ["e1", "e2", "e3"],
        "time": pa.array([dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=utc),
                          dt.datetime(2023, 11, 14, 22, 13, 21, 500000, tzinfo=utc), None],
                         pa.timestamp("us", tz="UTC")),
        "account_id": ["a", "b", "c"], "api_key_id": ["k"] * 3, "model": ["m"] * 3,
        "endpoint": ["/x"] * 3, "status": [200, 429, 200], "prompt_tokens": [1, 2, 3],
        "completion_tokens": [4.0, 5.0, 6.0], "flags": [["cot_request"], None, []],
    })
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    got = collect(ParquetSource(path, {"event_id": "id", "ts": "time"}, max_batch=2))
    assert [w for w, _ in got] == [f"{path}:row {n}" for n in (1, 2, 3)]
    decoded = [EventDecoder().decode(v) for _, v in got]
    assert decoded[0].ts == 1700000000000 and decoded[1].ts == 1700000001500
    assert decoded[0].completion_tokens == 4 and decoded[0].flags == ["cot_request"]
    assert decoded[2].code == "missing_field"          # no ts: reported, with its row
