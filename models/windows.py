"""Per-account tumbling windows on event time: counters and sketches for every account.

A :class:`WindowAccumulator` holds one window's figures for all accounts of a partition as
dense columns indexed by account slot. Closing it yields a :class:`WindowSummary` with the
rows of the accounts that were active.

>>> import numpy as np
>>> acc = WindowAccumulator(start_ts=0, end_ts=60_000)
>>> acc.add(np.array([0, 0, 2]), {"n": np.ones(3, dtype=np.int64),
...                               "completion_tokens": np.array([10, 20, 5])}, {})
>>> s = acc.close()
>>> s.slots.tolist(), s.counters["n"].tolist(), s.counters["completion_tokens"].tolist()
([0, 2], [2, 1], [30, 5])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.sketches import bits_of
from models.templates import EMPTY, SAMPLE_K, merge_sample

__all__ = ["BITMAPS", "COUNTERS", "FLOAT_COUNTERS", "WindowAccumulator", "WindowSummary"]

COUNTERS = (
    "n", "prompt_tokens", "completion_tokens", "reasoning_tokens", "n_ok", "n_429", "n_error",
    "n_cot", "n_logprobs", "n_logit_bias", "n_fp", "n_new_net", "n_new_ua", "n_new_key", "n_fresh_model",
    "n_new_model", "n_new_asn", "n_long", "n_xlike", "n_gap", "gap_lg", "gap_lg2",
)
FLOAT_COUNTERS = ("gap_lg", "gap_lg2")    # sums of ln(gap ms) and its square: float64
BITMAPS = ("keys", "nets", "asns", "uas", "models", "fps")
MIN_HASHES = ("nets", "asns", "uas")   # smallest hash seen: an order-independent identity
_NO_HASH = np.uint32(0xFFFF_FFFF)


def _dtype(counter: str) -> type:
    return np.float64 if counter in FLOAT_COUNTERS else np.int64


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """One closed window: figures of each active account (rows aligned with ``slots``)."""

    start_ts: int
    end_ts: int
    slots: np.ndarray                      # int64 account slots with n > 0, ascending
    counters: dict[str, np.ndarray]        # COUNTERS -> int64 (FLOAT_COUNTERS: float64)
    bitmaps: dict[str, np.ndarray]         # BITMAPS -> uint64 sketches
    first_ts: np.ndarray                   # int64: earliest event of each account
    last_ts: np.ndarray
    fp_sample: np.ndarray                  # (rows, SAMPLE_K) uint64 bottom-k fingerprints
    min_hashes: dict[str, np.ndarray] = field(default_factory=dict)   # MIN_HASHES -> uint32

    def __len__(self) -> int:
        return len(self.slots)


@dataclass(slots=True)
class WindowAccumulator:
    """Running sums for one window, for all accounts, growing as slots appear."""

    start_ts: int
    end_ts: int
    capacity: int = 0
    counters: dict[str, np.ndarray] = field(default_factory=dict)
    bitmaps: dict[str, np.ndarray] = field(default_factory=dict)
    first_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fp_sample: np.ndarray = field(default_factory=lambda: np.zeros((0, SAMPLE_K), np.uint64))
    min_hashes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.counters:
            self.counters = {k: np.zeros(self.capacity, dtype=_dtype(k)) for k in COUNTERS}
            self.bitmaps = {k: np.zeros(self.capacity, dtype=np.uint64) for k in BITMAPS}
            self.first_ts = np.full(self.capacity, np.iinfo(np.int64).max, dtype=np.int64)
            self.last_ts = np.zeros(self.capacity, dtype=np.int64)
            self.fp_sample = np.full((self.capacity, SAMPLE_K), EMPTY, dtype=np.uint64)
            self.min_hashes = {k: np.full(self.capacity, _NO_HASH, dtype=np.uint32) for k in MIN_HASHES}

    def _grow(self, needed: int) -> None:
        new = max(needed, 2 * self.capacity, 64)
        pad = new - self.capacity
        for d in (self.counters, self.bitmaps):
            for k, v in d.items():
                d[k] = np.concatenate([v, np.zeros(pad, dtype=v.dtype)])
        self.first_ts = np.concatenate([self.first_ts, np.full(pad, np.iinfo(np.int64).max)])
        self.last_ts = np.concatenate([self.last_ts, np.zeros(pad, dtype=np.int64)])
        self.fp_sample = np.concatenate(
            [self.fp_sample, np.full((pad, SAMPLE_K), EMPTY, dtype=np.uint64)])
        for k, v in self.min_hashes.items():
            self.min_hashes[k] = np.concatenate([v, np.full(pad, _NO_HASH, dtype=np.uint32)])
        self.capacity = new

    def add(self, slots: np.ndarray, sums: dict[str, np.ndarray],
            hashes: dict[str, np.ndarray], ts: np.ndarray | None = None,
            bits: dict[str, np.ndarray] | None = None) -> None:
        """Add events: ``slots[i]`` is event i's account; ``sums`` are per-event counter
        increments (a subset of COUNTERS); ``hashes`` per-event values for the BITMAPS;
        ``bits``: :func:`~models.sketches.bits_of` of some of them, where the caller has it."""
        if len(slots) == 0:
            return
        top = int(slots.max()) + 1
        if top > self.capacity:
            self._grow(top)
        uniq, inv = np.unique(slots, return_inverse=True)
        m = len(uniq)
        for name, values in sums.items():
            totals = np.bincount(inv, weights=values, minlength=m)
            col = self.counters[name]
            col[uniq] += totals.astype(col.dtype)
        for name, values in hashes.items():
            words = np.zeros(m, dtype=np.uint64)
            np.bitwise_or.at(words, inv, bits[name] if bits and name in bits else bits_of(values))
            self.bitmaps[name][uniq] |= words
            if name in self.min_hashes:
                present = values != 0
                lows = np.full(m, _NO_HASH, dtype=np.uint32)
                np.minimum.at(lows, inv[present], values[present].astype(np.uint32))
                self.min_hashes[name][uniq] = np.minimum(self.min_hashes[name][uniq], lows)
        if ts is not None:
            lo = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
            hi = np.zeros(m, dtype=np.int64)
            np.minimum.at(lo, inv, ts)
            np.maximum.at(hi, inv, ts)
            self.first_ts[uniq] = np.minimum(self.first_ts[uniq], lo)
            self.last_ts[uniq] = np.maximum(self.last_ts[uniq], hi)

    def add_fingerprints(self, slots: np.ndarray, fps: np.ndarray) -> None:
        """Merge prompt fingerprints into each account's bottom-k sample."""
        if len(slots):
            top = int(slots.max()) + 1
            if top > self.capacity:
                self._grow(top)
            merge_sample(self.fp_sample, slots, fps)

    def close(self) -> WindowSummary:
        active = np.flatnonzero(self.counters["n"] > 0) if self.capacity else np.zeros(0, np.int64)
        return WindowSummary(
            self.start_ts, self.end_ts, active.astype(np.int64),
            {k: v[active] for k, v in self.counters.items()},
            {k: v[active] for k, v in self.bitmaps.items()},
            self.first_ts[active], self.last_ts[active], self.fp_sample[active],
            {k: v[active] for k, v in self.min_hashes.items()},
        )

    # -- snapshots: plain data ------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        s = self.close()
        return {
            "start_ts": self.start_ts, "end_ts": self.end_ts, "slots": s.slots.tobytes(),
            "counters": {k: v.tobytes() for k, v in s.counters.items()},
            "bitmaps": {k: v.tobytes() for k, v in s.bitmaps.items()},
            "first_ts": s.first_ts.tobytes(), "last_ts": s.last_ts.tobytes(),
            "fp_sample": s.fp_sample.tobytes(),
            "min_hashes": {k: v.tobytes() for k, v in s.min_hashes.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowAccumulator:
        slots = np.frombuffer(d["slots"], dtype=np.int64)
        cap = int(slots.max()) + 1 if len(slots) else 0
        acc = cls(int(d["start_ts"]), int(d["end_ts"]), capacity=cap)
        for k in COUNTERS:
            if k in d["counters"]:     # snapshots from before a counter existed: zeros
                acc.counters[k][slots] = np.frombuffer(d["counters"][k], dtype=_dtype(k))
        for k in BITMAPS:
            acc.bitmaps[k][slots] = np.frombuffer(d["bitmaps"][k], dtype=np.uint64)
        acc.first_ts[slots] = np.frombuffer(d["first_ts"], dtype=np.int64)
        acc.last_ts[slots] = np.frombuffer(d["last_ts"], dtype=np.int64)
        acc.fp_sample[slots] = np.frombuffer(d["fp_sample"], dtype=np.uint64).reshape(-1, SAMPLE_K)
        for k, raw in d.get("min_hashes", {}).items():
            acc.min_hashes[k][slots] = np.frombuffer(raw, dtype=np.uint32)
        return acc
