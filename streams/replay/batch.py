"""What every replay source yields: batches of raw JSON event values with their origin.

A source never decodes: the replay loop validates every value with the worker's own
:class:`~streams.records.EventDecoder`, so an event the replay tool accepts is one the
worker accepts. ``locate(i)`` names where value ``i`` came from (``file.jsonl:42``,
``topic[3]@1234``) for the invalid-input report; it is only called for the rare bad ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["FileSource", "RawBatch", "Source", "consecutive_lines", "listed_positions"]


@dataclass(frozen=True, slots=True)
class RawBatch:
    values: list[bytes]               # raw JSON event values, in replay order
    locate: Callable[[int], str]      # index in ``values`` -> human location
    progress: float                   # source units done after this batch (bytes, rows, records)
    rejects: tuple[tuple[str, str], ...] = ()   # (location, reason): input the source could
    #                                             not even turn into a value (a broken CSV row)


class FileSource:
    """What the file sources share: a name (the path) and a known total (``_total``)."""

    path: Path
    _total: float

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def total(self) -> float | None:
        return self._total


class Source(Protocol):
    """A finite, ordered supply of raw events."""

    @property
    def name(self) -> str: ...

    @property
    def total(self) -> float | None:
        """Progress units in the whole source (``None`` when unknown)."""

    @property
    def unit(self) -> str:
        """What ``total`` and ``RawBatch.progress`` count: ``bytes``, ``rows`` or ``records``."""

    def batches(self) -> Iterator[RawBatch]: ...

    def close(self) -> None: ...


def consecutive_lines(name: str, first_line: int) -> Callable[[int], str]:
    """Locator for values that are consecutive lines starting at ``first_line``.

    >>> consecutive_lines("a.jsonl", 10)(2)
    'a.jsonl:12'
    """
    return lambda i: f"{name}:{first_line + i}"


def listed_positions(name: str, positions: list[int], what: str = "") -> Callable[[int], str]:
    """Locator for values whose positions are listed one by one.

    >>> listed_positions("a.csv", [2, 5, 9])(1), listed_positions("b.parquet", [7], "row ")(0)
    ('a.csv:5', 'b.parquet:row 7')
    """
    return lambda i: f"{name}:{what}{positions[i]}"
