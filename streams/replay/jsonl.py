"""JSON Lines files, plain or gzip-compressed: one request event per line.

Read in large chunks and split in C (``bytes.split``), so a line costs no Python-level
I/O. Line numbers are exact file line numbers; blank lines are skipped (they are not
events), every other line goes to the validator, and a bad one is reported by number.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from streams.replay.batch import FileSource, RawBatch, consecutive_lines, listed_positions
from streams.replay.errors import ReplayError

__all__ = ["GZIP_MAGIC", "JsonLinesSource", "open_maybe_gzip"]

GZIP_MAGIC = b"\x1f\x8b"
_MAX_LINE = 16 * 1024 * 1024   # far past the contract's 64 KiB: the file is not JSON Lines


def open_maybe_gzip(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """``(stream, raw)``: the decompressed stream and the file under it (for progress).

    Compression is detected from the content, not the name.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReplayError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise ReplayError(f"{path}: permission denied") from None
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
    raw.seek(0)
    return raw, raw


class JsonLinesSource(FileSource):
    """Events from a ``.jsonl`` / ``.jsonl.gz`` file.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
    >>> _ = open(path, "wb").write(b'{"a":1}\\n\\n{"a":2}\\r\\n{"a":3}')
    >>> [(b.values, [b.locate(i) for i in range(len(b.values))])
    ...  for b in JsonLinesSource(path).batches()]     # doctest: +ELLIPSIS
    [([b'{"a":1}', b'{"a":2}'], ['...x.jsonl:1', '...x.jsonl:3']), ([b'{"a":3}'], ['...x.jsonl:4'])]
    """

    unit = "bytes"

    def __init__(self, path: str | Path, *, chunk_bytes: int = 1 << 18, max_batch: int = 5000) -> None:
        if chunk_bytes <= 0 or max_batch <= 0:
            raise ValueError("chunk_bytes and max_batch must be positive")
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.max_batch = max_batch
        if not self.path.is_file():
            raise ReplayError(f"{path}: no such file")
        self._total = float(self.path.stat().st_size)
        self._open: tuple[BinaryIO, BinaryIO] | None = None

    def batches(self) -> Iterator[RawBatch]:
        stream, raw = open_maybe_gzip(self.path)
        self._open = (stream, raw)
        name = self.name
        line_no = 1
        carry = b""
        try:
            while True:
                try:
                    chunk = stream.read(self.chunk_bytes)
                except (OSError, EOFError, gzip.BadGzipFile) as exc:
                    raise ReplayError(f"{name}: cannot read past line {line_no}: {exc}") from None
                if not chunk:
                    break
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    if len(data) > _MAX_LINE:
                        raise ReplayError(f"{name}:{line_no}: line longer than {_MAX_LINE >> 20} MiB"
                                          " - is this a JSON Lines file?")
                    carry = data
                    continue
                carry = data[cut + 1:]
                body = data[:cut]
                lines = body.split(b"\n")
                yield from self._emit(name, lines, line_no, b"\r" in body, raw.tell())
                line_no += len(lines)
            if carry:
                yield from self._emit(name, [carry], line_no, b"\r" in carry, raw.tell())
        finally:
            self.close()

    def _emit(self, name: str, lines: list[bytes], first: int, has_cr: bool,
              progress: int) -> Iterator[RawBatch]:
        if has_cr:   # CRLF files: drop the CR (it would otherwise stay in the Kafka value)
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        positions: list[int] | None = None
        if b"" in lines:   # blank lines are not events: drop them but keep exact numbering
            kept = [(first + i, line) for i, line in enumerate(lines) if line.strip()]
            positions = [p for p, _ in kept]
            lines = [line for _, line in kept]
        step = self.max_batch
        for lo in range(0, len(lines), step):
            values = lines[lo:lo + step] if len(lines) > step else lines
            if positions is None:
                locate = consecutive_lines(name, first + lo)
            else:
                locate = listed_positions(name, positions[lo:lo + step])
            yield RawBatch(values, locate, float(progress))

    def close(self) -> None:
        opened, self._open = self._open, None
        if opened is not None:
            for f in opened:
                f.close()
