"""Inter-arrival times per account, in arrival order, across batch boundaries.

A gap is the time from an account's previous request to this one, in the order the
partition delivered them (so the result does not depend on where batches are cut). Gaps
are kept as ``ln(max(gap, 1 ms))``; their spread says how machine-like the arrivals are
(see :func:`models.horizon.horizon_features`).

>>> import numpy as np
>>> last = np.array([0, 1_000], dtype=np.int64)        # account 1 was last seen at 1 s
>>> has, lg = log_gaps(np.array([1, 0, 1, 1]), np.array([2_000, 5_000, 4_000, 4_000]), last)
>>> has.tolist(), [round(x, 2) for x in lg.tolist()]
([True, False, True, True], [6.91, 0.0, 7.6, 0.0])
>>> last.tolist()
[5000, 4000]
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_gaps"]


def log_gaps(slots: np.ndarray, ts: np.ndarray, last_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event: (has a predecessor, ln gap ms or 0); updates ``last_ts`` in place (0 there
    means never seen)."""
    order = np.argsort(slots, kind="stable")
    s, t = slots[order], ts[order]
    prev = np.empty_like(t)
    prev[1:] = t[:-1]
    first = np.ones(len(s), dtype=bool)
    first[1:] = s[1:] != s[:-1]
    prev[first] = last_ts[s[first]]
    has = prev > 0
    gaps = np.maximum(np.abs(t - prev), 1).astype(np.float64)
    last_of = np.ones(len(s), dtype=bool)
    last_of[:-1] = s[1:] != s[:-1]
    last_ts[s[last_of]] = t[last_of]
    has_out = np.empty(len(s), dtype=bool)
    lg_out = np.empty(len(s), dtype=np.float64)
    has_out[order] = has
    lg_out[order] = np.where(has, np.log(gaps), 0.0)
    return has_out, lg_out
