"""Duplicate ``event_id`` suppression within an event-time horizon.

Keys live in per-minute buckets of sorted ``uint64`` arrays (a few sorted runs per bucket,
merged now and then), so a 10,000-event batch is checked with a handful of binary searches.
Each bucket remembers the first input offset it saw: after a restart the shell re-reads the
input from there to rebuild the index instead of saving millions of keys in every snapshot.

>>> d = DedupIndex(horizon_ms=60_000)
>>> keys = np.array([1, 2, 2, 3], dtype=np.uint64); ts = np.array([0, 0, 0, 10])
>>> d.check_and_add(keys, ts).tolist()        # the second "2" is a duplicate
[False, False, True, False]
>>> d.check_and_add(np.array([3, 4], dtype=np.uint64), np.array([10, 10])).tolist()
[True, False]
"""

from __future__ import annotations

import numpy as np

__all__ = ["DedupIndex"]

_BUCKET_MS = 60_000


class DedupIndex:
    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._runs: dict[int, list[np.ndarray]] = {}
        self._first_offset: dict[int, int] = {}

    def __len__(self) -> int:
        return sum(len(r) for runs in self._runs.values() for r in runs)

    def check_and_add(self, keys: np.ndarray, ts: np.ndarray,
                      offsets: np.ndarray | None = None) -> np.ndarray:
        """Mark duplicates (seen before, or earlier in this batch) and remember the rest."""
        dup = np.zeros(len(keys), dtype=bool)
        if len(keys) == 0:
            return dup
        bucket = ts // _BUCKET_MS
        first = int(bucket[0])
        if (bucket == first).all():   # the usual case: a batch within one minute
            self._check_bucket(first, np.arange(len(keys)), keys, dup, offsets)
        else:
            for b in np.unique(bucket).tolist():
                self._check_bucket(b, np.flatnonzero(bucket == b), keys, dup, offsets)
        return dup

    def _check_bucket(self, b: int, idx: np.ndarray, keys: np.ndarray, dup: np.ndarray,
                      offsets: np.ndarray | None) -> None:
        """``idx``: the batch positions (ascending) of the events in minute bucket ``b``."""
        sub = keys[idx]
        order = np.argsort(sub, kind="stable")    # equal keys keep batch order: first one wins
        ks = sub[order]
        first = np.ones(len(ks), dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
        dup[idx[order[~first]]] = True
        uniq, where = ks[first], idx[order[first]]   # sorted: searches walk the runs in order
        runs = self._runs.setdefault(b, [])
        for run in runs:
            pos = np.minimum(np.searchsorted(run, uniq), len(run) - 1)
            hit = run[pos] == uniq
            if hit.any():
                dup[where[hit]] = True
                uniq, where = uniq[~hit], where[~hit]
        if len(uniq):
            runs.append(uniq)
            if len(runs) > 8:
                self._runs[b] = [np.sort(np.concatenate(runs))]
        if offsets is not None:
            # in-batch copies come after their first occurrence: the minimum is the same
            lo = int(offsets[idx].min())
            self._first_offset[b] = min(self._first_offset.get(b, lo), lo)

    def expire(self, watermark_ts: int) -> None:
        """Forget buckets entirely older than ``watermark_ts - horizon``."""
        oldest = (watermark_ts - self.horizon_ms) // _BUCKET_MS
        for b in [b for b in self._runs if b < oldest]:
            del self._runs[b]
            self._first_offset.pop(b, None)

    def rebuild_from_offset(self) -> int | None:
        """Earliest input offset whose events the index still covers (``None``: empty)."""
        return min(self._first_offset.values()) if self._first_offset else None
