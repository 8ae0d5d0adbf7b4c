"""Crash loops: a message that keeps killing the worker is dead-lettered, not retried forever.

A Python exception while a batch is processed never stops the worker: the engine retries
the batch message by message and dead-letters what still fails (reason ``internal_error``).
What is left is the crash no handler sees: the process killed by the kernel (out of
memory), a fault in native code, a hang the orchestrator ends. The worker then restarts
from its last snapshot and meets the same message again, and again.

So each partition keeps a small journal entry on the state topic:

* A clean stop (SIGTERM, a rebalance) writes ``clean``. A worker that finds an entry that
  is not clean knows the run before it died, and processes that partition *carefully*:
  before each chunk of messages it writes the chunk's offsets (``inflight``) and waits for
  the broker to have them.
* After a crash in careful mode the chunk in flight is the *suspect* range. The next run
  cuts it into :data:`SPLIT` chunks, so each further crash narrows the suspects 32-fold.
* A message that was in flight in ``max_crashes`` crashes in a row, the last time alone,
  is dead-lettered (``internal_error``) without being processed again.
* Careful mode ends with the first snapshot past the suspect range; ordinary processing
  writes nothing per batch.

Everything here is plain logic on plain data; the engine does the Kafka I/O.

>>> g = PartitionGuard.resume(None, max_crashes=2)          # first start: nothing known
>>> g.careful, g.poison
(False, None)
>>> died = g.entry(inflight=None)                            # ... that run died
>>> g = PartitionGuard.resume(died, max_crashes=2)
>>> g.careful, [(c[0], c[-1]) for c in g.chunks(list(range(100, 164)))]
(True, [(100, 163)])
>>> g = PartitionGuard.resume(g.entry(inflight=(100, 163)), max_crashes=2)   # died again
>>> g.suspect, g.crashes, len(g.chunks(list(range(100, 164))))
((100, 163), 1, 32)
>>> g = PartitionGuard.resume(g.entry(inflight=(130, 131)), max_crashes=2)
>>> [c for c in g.chunks(list(range(100, 164))) if c[0] >= 130][:2]
[[130], [131]]
>>> g = PartitionGuard.resume(g.entry(inflight=(131, 131)), max_crashes=2)
>>> g.poison, g.crashes
(131, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

__all__ = ["SPLIT", "JournalEntry", "PartitionGuard"]

SPLIT = 32


class JournalEntry(msgspec.Struct, frozen=True):
    """One partition's journal, as stored (msgpack, plain data)."""

    v: int = 1
    clean: bool = False
    inflight: tuple[int, int] | None = None     # first and last offset being processed
    suspect: tuple[int, int] | None = None      # the range in flight in the last crashes
    crashes: int = 0                            # consecutive crashes with the suspect in flight


@dataclass(slots=True)
class PartitionGuard:
    """What a worker knows, on assignment, about crashes on one partition before it."""

    careful: bool
    suspect: tuple[int, int] | None
    crashes: int
    max_crashes: int

    @classmethod
    def resume(cls, previous: JournalEntry | None, max_crashes: int = 3) -> PartitionGuard:
        """The guard for a run that starts after ``previous`` was last written."""
        if max_crashes < 1:
            raise ValueError("max_crashes must be >= 1")
        if previous is None or previous.clean:
            return cls(False, None, 0, max_crashes)
        suspect, crashes = previous.suspect, previous.crashes
        if previous.inflight is not None:
            a, b = previous.inflight
            inside = suspect is not None and suspect[0] <= a and b <= suspect[1]
            crashes = crashes + 1 if inside else 1
            suspect = (a, b)
        return cls(True, suspect, crashes, max_crashes)

    @property
    def poison(self) -> int | None:
        """The offset to dead-letter unprocessed, if the crashes have narrowed to one."""
        s = self.suspect
        if s is not None and s[0] == s[1] and self.crashes >= self.max_crashes:
            return s[0]
        return None

    def entry(self, inflight: tuple[int, int] | None, clean: bool = False) -> JournalEntry:
        return JournalEntry(clean=clean, inflight=inflight, suspect=self.suspect,
                            crashes=self.crashes)

    def chunks(self, offsets: list[int]) -> list[list[int]]:
        """How to cut a batch (its offsets, ascending) for careful processing: the suspect
        range in :data:`SPLIT` parts, everything else whole."""
        if not offsets:
            return []
        if self.suspect is None:
            return [offsets]
        a, b = self.suspect
        size = max(1, math.ceil((b - a + 1) / SPLIT))
        out: list[list[int]] = []
        current: list[int] = []
        current_key: object = None
        for o in offsets:
            key: object = ("in", (o - a) // size) if a <= o <= b else ("before" if o < a else "after")
            if key != current_key and current:
                out.append(current)
                current = []
            current_key = key
            current.append(o)
        out.append(current)
        return out

    def passed(self, next_offset: int) -> bool:
        """A snapshot up to ``next_offset`` was written: leave careful mode once it is past
        the suspects (or, with none known, at once). True when careful mode ended."""
        if not self.careful:
            return False
        if self.suspect is None or next_offset > self.suspect[1]:
            self.careful, self.suspect, self.crashes = False, None, 0
            return True
        return False

    def dead_lettered(self) -> None:
        """The poison message was dead-lettered: the suspects are settled."""
        self.suspect, self.crashes = None, 0
