"""What an account pulled over hours: decayed per-account sums and the features read from them.

A window is one minute; a distillation run lasts hours and stays under every per-minute
limit. So each account also keeps a handful of sums over its recent history that decay
with a half-life of an hour (``HALF_LIFE_MS``): requests, long answers, extraction-like
requests, chain-of-thought asks, requests to a newly released model, and the moments of
its inter-arrival times (in log space). The sums are folded in once per closed window of
the account, on event time, so they survive restarts with the rest of the account table
and replay exactly.

Per request (:func:`request_flags`):

* a *long answer* has at least ``LONG_TOKENS`` completion tokens and at least three times
  as many completion tokens as prompt tokens (a distiller wants output, not echo);
* an *extraction-like* request is a long answer that asks for step-by-step reasoning
  (the ``cot_request`` flag) or returns reasoning tokens worth 30% of the completion.

Neither says anything on its own (honest reasoning users send both); the detectors weigh
their shares over hours with who the account is.

>>> import numpy as np
>>> long, xlike = request_flags(np.array([100, 100, 2000]), np.array([900, 900, 900]),
...                             np.array([0, 400, 0]), np.array([False, False, True]))
>>> long.tolist(), xlike.tolist()
([True, True, False], [False, True, False])
>>> h = np.zeros((1, len(HORIZON)), dtype=np.float32)
>>> end = np.zeros(1, dtype=np.int64)
>>> window = {name: np.array([10.0]) for name in HORIZON}
>>> fold(h, end, np.array([0]), 60_000, window)
>>> fold(h, end, np.array([0]), 60_000 + HALF_LIFE_MS, window)   # an hour later: half of it is left
>>> float(h[0, HORIZON.index("n")])
15.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["HALF_LIFE_MS", "HORIZON", "LONG_TOKENS", "fold", "horizon_features", "request_flags"]

HALF_LIFE_MS = 3_600_000
LONG_TOKENS = 400
#: The decayed sums, per account (window counters of the same names are folded in).
HORIZON = ("n", "n_long", "n_xlike", "n_cot", "n_fresh_model", "n_gap", "gap_lg", "gap_lg2")
_I = {name: i for i, name in enumerate(HORIZON)}


def request_flags(prompt_tokens: np.ndarray, completion_tokens: np.ndarray,
                  reasoning_tokens: np.ndarray, cot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(long answer, extraction-like) per request."""
    long = (completion_tokens >= LONG_TOKENS) & (completion_tokens >= 3 * prompt_tokens)
    reasoning = 10 * reasoning_tokens >= 3 * completion_tokens
    return long, long & (cot | (reasoning & (reasoning_tokens > 0)))


def fold(h: np.ndarray, h_end: np.ndarray, slots: np.ndarray, end_ts: int,
         window: dict[str, np.ndarray]) -> None:
    """Decay the sums of ``slots`` to ``end_ts`` and add this window's counts (in place)."""
    dt = np.maximum(end_ts - h_end[slots], 0).astype(np.float64)
    keep = np.where(h_end[slots] > 0, np.exp2(-dt / HALF_LIFE_MS), 0.0)
    cur = h[slots].astype(np.float64) * keep[:, None]
    for name, i in _I.items():
        cur[:, i] += window[name]
    h[slots] = cur
    h_end[slots] = end_ts


def horizon_features(h: np.ndarray) -> dict[str, np.ndarray]:
    """Shares over the horizon and the spread of log inter-arrival times.

    ``gap_spread`` is the standard deviation of ln(gap in ms): about 1.28 for Poisson
    arrivals, more for bursty human or batch traffic, well under 1 for a client that
    fires on a timer. It is ``inf`` until 20 gaps are behind it.

    >>> h = np.zeros((1, len(HORIZON)))
    >>> h[0, [0, 1, 2, 5]] = [100, 80, 60, 99]
    >>> h[0, 6], h[0, 7] = 99 * 7.0, 99 * 49.0 + 99 * 0.04   # ln gaps: mean 7, sd 0.2
    >>> f = horizon_features(h)
    >>> float(f["long_share"][0]), float(f["xlike_share"][0]), round(float(f["gap_spread"][0]), 2)
    (0.8, 0.6, 0.2)
    """
    h = h.astype(np.float64)
    n = h[:, _I["n"]]
    safe = np.maximum(n, 1e-9)
    g = h[:, _I["n_gap"]]
    gs = np.maximum(g, 1e-9)
    mean = h[:, _I["gap_lg"]] / gs
    var = np.maximum(h[:, _I["gap_lg2"]] / gs - mean * mean, 0.0)
    return {
        "h_requests": n,
        "long_share": h[:, _I["n_long"]] / safe,
        "xlike_share": h[:, _I["n_xlike"]] / safe,
        "h_cot_share": h[:, _I["n_cot"]] / safe,
        "h_fresh_model_share": h[:, _I["n_fresh_model"]] / safe,
        "gap_spread": np.where(g >= 20, np.sqrt(var), np.inf),
        "mean_gap_s": np.where(g >= 1, np.exp(mean) / 1000.0, np.inf),
    }
