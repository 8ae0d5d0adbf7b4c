"""Per-account state of one partition, as columns indexed by a dense account slot.

Kept small on purpose (~200 bytes an account plus a drift detector once warmed up):
when the account was first seen, how many windows it has been active, exponentially
weighted baselines of a few features, and 64-bit sketches of the networks, user agents,
API keys and models it has used before (for novelty tests).

>>> t = AccountTable()
>>> t.slots_for(["a", "b", "a"], np.array([5, 6, 7])).tolist()
[0, 1, 0]
>>> t.first_seen_ts[:2].tolist(), len(t)
([5, 6], 2)
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np

from models.horizon import HORIZON

__all__ = ["BASELINE_FEATURES", "AccountTable"]

BASELINE_FEATURES = ("rate_per_min", "extraction_score", "completion_tokens_per_req")
_KNOWN = ("known_nets", "known_uas", "known_keys", "known_models", "known_asns")
#: Long-horizon state (see :mod:`models.horizon`); a
#: snapshot written before a column existed restores it as zeros.
_LONG = ("last_event_ts", "horizon", "horizon_end")
_COLUMNS = ("first_seen_ts", "windows_seen", "last_window_end", *_KNOWN, "ew_mean", "ew_var", *_LONG)


class AccountTable:
    """Slots, baselines and history sketches for the accounts of one partition."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.capacity = 0
        self.first_seen_ts = np.zeros(0, dtype=np.int64)
        self.windows_seen = np.zeros(0, dtype=np.int32)
        self.last_window_end = np.zeros(0, dtype=np.int64)
        self.known_nets = np.zeros(0, dtype=np.uint64)
        self.known_uas = np.zeros(0, dtype=np.uint64)
        self.known_keys = np.zeros(0, dtype=np.uint64)
        self.known_models = np.zeros(0, dtype=np.uint64)
        self.known_asns = np.zeros(0, dtype=np.uint64)
        self.last_event_ts = np.zeros(0, dtype=np.int64)     # arrival order, for gaps
        self.horizon = np.zeros((0, len(HORIZON)), dtype=np.float32)
        self.horizon_end = np.zeros(0, dtype=np.int64)
        self.ew_mean = np.zeros((0, len(BASELINE_FEATURES)), dtype=np.float64)
        self.ew_var = np.zeros((0, len(BASELINE_FEATURES)), dtype=np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def _grow(self, needed: int) -> None:
        new = max(needed, 2 * self.capacity, 64)
        pad = new - self.capacity

        def grow(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a, np.zeros((pad, *a.shape[1:]), dtype=a.dtype)])

        for name in _COLUMNS:
            setattr(self, name, grow(getattr(self, name)))
        self.capacity = new

    def slots_for(self, account_ids: list[str], ts: np.ndarray) -> np.ndarray:
        """Slot of each event's account, creating slots (first seen = event ts) as needed."""
        index = self.index
        get = index.get
        slots = np.fromiter(map(get, account_ids, repeat(-1)), dtype=np.int64, count=len(account_ids))
        if (slots < 0).any():
            for i in np.flatnonzero(slots < 0).tolist():
                a = account_ids[i]
                s = get(a, -1)
                if s == -1:
                    s = len(self.ids)
                    if s >= self.capacity:
                        self._grow(s + 1)
                    index[a] = s
                    self.ids.append(a)
                    self.first_seen_ts[s] = ts[i]
                slots[i] = s
        return slots

    def ids_of(self, slots: np.ndarray) -> list[str]:
        ids = self.ids
        return [ids[s] for s in slots.tolist()]

    def is_new(self, sketch: str, slots: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """True where an event's bit was never seen for its account in earlier windows."""
        known: np.ndarray = getattr(self, sketch)[slots]
        return (known & bits) == 0

    def observe_window(self, slots: np.ndarray, end_ts: int, bitmaps: dict[str, np.ndarray],
                       baseline: np.ndarray, alpha: float = 0.1) -> None:
        """Fold a closed window into history: sketches, window count, EW baselines."""
        self.known_nets[slots] |= bitmaps["nets"]
        self.known_uas[slots] |= bitmaps["uas"]
        self.known_keys[slots] |= bitmaps["keys"]
        self.known_models[slots] |= bitmaps["models"]
        if "asns" in bitmaps:
            self.known_asns[slots] |= bitmaps["asns"]
        first = self.windows_seen[slots] == 0
        mean = self.ew_mean[slots]
        var = self.ew_var[slots]
        diff = baseline - mean
        new_mean = np.where(first[:, None], baseline, mean + alpha * diff)
        new_var = np.where(first[:, None], 0.0, (1 - alpha) * (var + alpha * diff * diff))
        self.ew_mean[slots] = new_mean
        self.ew_var[slots] = new_var
        self.windows_seen[slots] += 1
        self.last_window_end[slots] = end_ts

    # -- snapshots: plain data ------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        n = len(self.ids)
        out: dict[str, Any] = {"ids": list(self.ids)}
        for name in _COLUMNS:
            out[name] = getattr(self, name)[:n].tobytes()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccountTable:
        t = cls()
        ids = list(d["ids"])
        t._grow(len(ids))
        t.ids = ids
        t.index = {a: i for i, a in enumerate(ids)}
        n = len(ids)
        for name in _COLUMNS:
            if name not in d:
                continue
            arr = getattr(t, name)
            arr[:n] = np.frombuffer(d[name], dtype=arr.dtype).reshape((n, *arr.shape[1:]))
        return t
