"""Extraction drift: an account's share of extraction-like requests rising above its own past.

Low-and-slow campaigns run from established accounts whose honest use goes on: nothing
about one window stands out, and the account is trusted. What changes is the *share* of
extraction-like requests (long answers with reasoning asked for or returned, see
:mod:`models.horizon`) against the account's own history. A Bernoulli CUSUM per account
accumulates the evidence window by window:

    S <- max(0, S + x ln(p1/p0) + (n - x) ln((1 - p1)/(1 - p0)))

with ``n`` requests and ``x`` extraction-like ones in the window (one window adds at most
``max_window_llr``: honest use is bursty), ``p0`` the account's
baseline share (decayed counts, half-life ``baseline_half_life_ms``, smoothed towards 2%)
and ``p1`` the shift worth detecting (the larger of ``2 p0`` and ``p0 + min_shift``). The
baseline learns slowly (a half-life of 12 hours against a ramp of one to three) and stops
learning while the CUSUM is above half its threshold, so a slow ramp cannot teach it that
the new behaviour is normal. It fires once ``S`` reaches ``threshold`` and
the baseline holds ``min_baseline`` requests and the window itself is above the baseline;
it keeps firing on windows that still hold extraction-like requests until ``S`` (capped at
twice the threshold, so that it comes down when the behaviour stops) falls under half the
threshold: hysteresis, one incident rather than one per dip. For ``armed_ms`` after a
firing the baseline does not learn, so the behaviour never becomes its own baseline. Severity ``info`` alone (it is a change, not a verdict); corroborated by
another family it becomes a page under the policy in :mod:`models.corroboration`.

State (per account slot: baseline requests, baseline extraction-like, CUSUM, when the
baseline was last decayed, when it last fired) is plain numbers, five float64 columns.

>>> import numpy as np
>>> from types import SimpleNamespace as Ctx
>>> det = ExtractionDrift(min_baseline=50)
>>> def window(n, x, t):
...     s = Ctx(slots=np.array([0]), end_ts=t * 60_000, counters={"n": np.array([n]), "n_xlike": np.array([x])})
...     return Ctx(summary=s, end_ts=t * 60_000, features={"requests": np.array([float(n)])})
>>> fired = [t for t in range(120) if det.detect(window(10, 0 if t < 60 else 3, t))]
>>> fired[0] >= 60, len(fired) > 0
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.detectors.base import Hit, WindowContext

__all__ = ["ExtractionDrift"]

_COLS = ("base_n", "base_x", "cusum", "base_end", "armed")


class ExtractionDrift:
    rule = "extraction_drift"

    def __init__(self, threshold: float = 8.0, min_shift: float = 0.15, min_baseline: float = 150.0,
                 baseline_half_life_ms: int = 12 * 3_600_000, prior_share: float = 0.02,
                 prior_weight: float = 50.0, max_window_llr: float = 2.5,
                 armed_ms: int = 30 * 60_000) -> None:
        self.armed_ms = armed_ms
        self.max_window_llr = max_window_llr
        self.threshold = threshold
        self.min_shift = min_shift
        self.min_baseline = min_baseline
        self.half_life_ms = baseline_half_life_ms
        self.prior_share = prior_share
        self.prior_weight = prior_weight
        self.state = np.zeros((0, len(_COLS)), dtype=np.float64)

    def _grow(self, top: int) -> None:
        if top > len(self.state):
            pad = max(top, 2 * len(self.state), 64) - len(self.state)
            self.state = np.concatenate([self.state, np.zeros((pad, len(_COLS)))])

    def detect(self, ctx: WindowContext) -> list[Hit]:
        s = ctx.summary
        slots = s.slots
        if len(slots) == 0:
            return []
        self._grow(int(slots.max()) + 1)
        st = self.state[slots]
        n = s.counters["n"].astype(np.float64)
        x = s.counters["n_xlike"].astype(np.float64)
        keep = np.where(st[:, 3] > 0, np.exp2(-(s.end_ts - st[:, 3]) / self.half_life_ms), 1.0)
        base_n, base_x = st[:, 0] * keep, st[:, 1] * keep
        p0 = np.clip((base_x + self.prior_share * self.prior_weight)
                     / (base_n + self.prior_weight), 0.005, 0.6)
        p1 = np.minimum(np.maximum(2 * p0, p0 + self.min_shift), 0.95)
        # one window adds at most max_window_llr: honest use comes in bursts (a session of
        # reasoning questions), which a per-request Bernoulli model would overcount; a
        # campaign keeps adding, window after window
        llr = np.minimum(x * np.log(p1 / p0) + (n - x) * np.log((1 - p1) / (1 - p0)),
                         self.max_window_llr)
        cusum = np.clip(st[:, 2] + llr, 0.0, 2 * self.threshold)   # a ceiling: it can end
        # armed: fired within the last ``armed_ms``; hysteresis down to half the threshold,
        # and the baseline does not learn meanwhile (a ramp must not become the baseline)
        armed = (st[:, 4] > 0) & (s.end_ts - st[:, 4] <= self.armed_ms)
        elevated = x > p0 * n                    # this window itself above the baseline
        going_on = armed & (x > 0) & (cusum >= self.threshold / 2)
        fire = ((elevated & (cusum >= self.threshold)) | going_on) & (base_n >= self.min_baseline)
        learn = ~armed & (cusum < self.threshold / 2)   # frozen once the evidence builds up
        st[:, 0] = np.where(learn, base_n + n, base_n)
        st[:, 1] = np.where(learn, base_x + x, base_x)
        st[:, 2] = cusum
        st[:, 4] = np.where(fire, s.end_ts, st[:, 4])
        st[:, 3] = s.end_ts
        self.state[slots] = st
        hits = []
        for row in np.flatnonzero(fire).tolist():
            share = float(x[row] / n[row]) if n[row] else 0.0
            evidence = {
                "cusum": round(float(cusum[row]), 3), "baseline_share": round(float(p0[row]), 4),
                "window_share": round(share, 4), "baseline_requests": round(float(base_n[row]), 1),
                "anomaly_analyses": [{"baseline": "own history", "feature": "extraction_like_share",
                                      "baseline_value": round(float(p0[row]), 4),
                                      "value": round(share, 4),
                                      "cusum": round(float(cusum[row]), 3),
                                      "limit": self.threshold}],
            }
            hits.append(Hit(
                self.rule, "info", row, float(cusum[row]), self.threshold,
                f"The share of long reasoning-rich requests rose from this account's usual "
                f"{p0[row]:.1%} (over {base_n[row]:.0f} requests) to {share:.0%} in this window; "
                f"the evidence has accumulated for a while (CUSUM {cusum[row]:.1f} >= "
                f"{self.threshold:g}): extraction added to established use.", evidence))
        return hits

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "state": self.state.tobytes(), "cols": len(_COLS)}

    def load_dict(self, d: dict[str, Any]) -> None:
        old = np.frombuffer(d["state"], dtype=np.float64).reshape(-1, int(d["cols"]))
        self.state = np.zeros((len(old), len(_COLS)))
        self.state[:, :old.shape[1]] = old          # columns added later start at zero
