"""Behaviour drift: River's Page-Hinkley test on each account's own extraction score.

One small detector per warmed-up account, fed once per active window (never per request).
River sits behind :class:`PageHinkleyState`, which also turns the detector into plain data
for snapshots (River objects are never pickled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river.drift import PageHinkley

from models.detectors.base import Hit, WindowContext, feature_evidence

__all__ = ["BehaviorDrift", "PageHinkleyState"]


class PageHinkleyState:
    """Adapter around ``river.drift.PageHinkley`` (mode "up") with plain-data snapshots.

    >>> ph = PageHinkleyState(min_instances=3, threshold=1.0)
    >>> [ph.update(x) for x in [0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9]][-3:]
    [False, True, False]
    >>> clone = PageHinkleyState.from_list(ph.to_list(), min_instances=3, threshold=1.0)
    >>> clone.to_list() == ph.to_list()
    True
    """

    __slots__ = ("_ph",)

    def __init__(self, min_instances: int = 5, delta: float = 0.02, threshold: float = 1.0) -> None:
        self._ph = PageHinkley(min_instances=min_instances, delta=delta, threshold=threshold,
                               mode="up")

    def update(self, x: float) -> bool:
        self._ph.update(x)
        return bool(self._ph.drift_detected)

    @property
    def mean(self) -> float:
        return float(self._ph._x_mean.get())

    def to_list(self) -> list[float]:
        p = self._ph
        return [p._x_mean.n, p._x_mean._mean, p._sum_increase, p._sum_decrease,
                p._min_increase, p._max_decrease, float(p._drift_detected)]

    @classmethod
    def from_list(cls, values: list[float], **params: Any) -> PageHinkleyState:
        s = cls(**params)
        p: Any = s._ph
        n, mean, inc, dec, min_inc, max_dec, drift = values
        p._x_mean.n, p._x_mean._mean = n, mean
        p._sum_increase, p._sum_decrease = inc, dec
        p._min_increase, p._max_decrease = min_inc, max_dec
        p._drift_detected = bool(drift)
        return s


class BehaviorDrift:
    """Fires when an established account's extraction score drifts up from its own past."""

    rule = "behavior_drift"
    _EVIDENCE = ("requests", "extraction_score", "neardup_share", "completion_tokens_per_req",
                 "cot_share", "reasoning_share")

    def __init__(self, warmup_windows: int = 5, delta: float = 0.02, threshold: float = 1.0,
                 min_score: float = 0.4, min_requests: int = 10, pending_windows: int = 5) -> None:
        self.warmup_windows = warmup_windows
        self.delta = delta
        self.threshold = threshold
        self.min_score = min_score
        self.min_requests = min_requests
        self.pending_windows = pending_windows
        self._detectors: dict[int, PageHinkleyState] = {}
        # a drift detected in a window whose own score was below min_score stays pending
        # for a few windows (the test resets on detection; a noisy window must not lose it)
        self._pending: dict[int, int] = {}

    def _params(self) -> dict[str, Any]:
        return {"min_instances": self.warmup_windows, "delta": self.delta,
                "threshold": self.threshold}

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        score = f["extraction_score"]
        active = np.flatnonzero(f["requests"] >= self.min_requests).tolist()
        hits = []
        for row in active:
            slot = ctx.slot(row)
            det = self._detectors.get(slot)
            if det is None:
                det = self._detectors[slot] = PageHinkleyState(**self._params())
            before = det.mean
            drifted = det.update(float(score[row])) and bool(ctx.warmed_up[row])
            if drifted and score[row] < self.min_score:
                self._pending[slot] = self.pending_windows
                continue
            pending = self._pending.get(slot, 0)
            if pending and not drifted:
                if score[row] < self.min_score:
                    if pending > 1:
                        self._pending[slot] = pending - 1
                    else:
                        del self._pending[slot]
                    continue
                drifted = True
            if drifted:
                self._pending.pop(slot, None)
                ev = feature_evidence(ctx, row, self._EVIDENCE)
                ev["baseline_extraction_score"] = round(before, 4)
                ev["windows_seen"] = int(ctx.windows_seen[row])
                hits.append(Hit(
                    self.rule, "warning", row, float(score[row]), self.min_score,
                    f"Account's traffic drifted from its own baseline towards extraction: "
                    f"extraction score {score[row]:.2f} against {before:.2f} over "
                    f"{int(ctx.windows_seen[row])} earlier windows.", ev))
        return hits

    def forget(self, slots: set[int]) -> None:
        for s in slots:
            self._detectors.pop(s, None)
            self._pending.pop(s, None)

    def to_dict(self) -> dict[str, Any]:
        return {"slots": list(self._detectors), "states": [d.to_list() for d in self._detectors.values()],
                "pending": [[k, v] for k, v in sorted(self._pending.items())]}

    def load_dict(self, state: dict[str, Any]) -> None:
        self._detectors = {int(s): PageHinkleyState.from_list(list(v), **self._params())
                           for s, v in zip(state["slots"], state["states"], strict=True)}
        self._pending = {int(k): int(v) for k, v in state.get("pending", [])}
