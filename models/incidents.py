"""Incidents: turn per-window hits into one firing alert per ongoing incident, then resolved.

A hit for (rule, accounts) with no open incident opens one and emits ``firing``. Further
hits only extend it, unless one is more severe: then the incident is escalated and sent
again, ``firing`` with the same ``alert_id`` and the higher severity. After
``cooldown_windows`` windows without a hit (the hysteresis that keeps a flapping signal one
incident) it emits ``resolved`` with the same ``alert_id``. Ids are derived from the rule, the accounts and the incident's
first window, so the same data always yields the same ids.

>>> t = IncidentTracker(window_ms=60_000, cooldown_windows=2)
>>> h = Finding.hit("logit_probe", "warning", ("acct-1",), 0.9, 0.5, 0, 60_000, "s", {})
>>> [f.status for f in t.observe([h])]
['firing']
>>> t.observe([Finding.hit("logit_probe", "warning", ("acct-1",), 0.8, 0.5, 60_000, 120_000, "s", {})])
[]
>>> again = t.observe([Finding.hit("logit_probe", "critical", ("acct-1",), 0.8, 0.5, 60_000, 120_000, "s", {})])
>>> [(f.severity, f.alert_id == h.alert_id) for f in again]
[('critical', True)]
>>> t.resolve_due(180_000)
[]
>>> [(f.status, f.window_end_ts) for f in t.resolve_due(240_000)]
[('resolved', 120000)]
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["Finding", "IncidentTracker", "alert_id_for"]

_RANK = {"info": 0, "warning": 1, "critical": 2}


def alert_id_for(rule: str, account_ids: tuple[str, ...], start_ts: int) -> str:
    """Deterministic alert id.

    >>> alert_id_for("logit_probe", ("b", "a"), 0) == alert_id_for("logit_probe", ("a", "b"), 0)
    True
    """
    text = f"{rule}|{','.join(sorted(account_ids))}|{start_ts}"
    return "xw-" + hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert-to-be (``detected_at`` is stamped by the shell when it is emitted)."""

    status: str
    alert_id: str
    rule: str
    severity: str
    account_ids: tuple[str, ...]
    score: float
    threshold: float
    window_start_ts: int
    window_end_ts: int
    summary: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "account_ids": list(self.account_ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(**{**d, "account_ids": tuple(d["account_ids"])})

    @classmethod
    def hit(cls, rule: str, severity: str, account_ids: tuple[str, ...], score: float,
            threshold: float, start_ts: int, end_ts: int, summary: str,
            evidence: dict[str, Any]) -> Finding:
        accounts = tuple(sorted(account_ids))
        return cls("firing", alert_id_for(rule, accounts, start_ts), rule, severity, accounts,
                   score, threshold, start_ts, end_ts, summary, evidence)


@dataclass(slots=True)
class _Incident:
    first: Finding
    last_hit_end_ts: int
    peak_score: float
    windows_hit: int


class IncidentTracker:
    def __init__(self, window_ms: int, cooldown_windows: int = 3) -> None:
        if cooldown_windows < 1:
            raise ValueError("cooldown_windows must be >= 1")
        self.window_ms = window_ms
        self.cooldown_windows = cooldown_windows
        self._open: dict[tuple[str, tuple[str, ...]], _Incident] = {}

    def __len__(self) -> int:
        return len(self._open)

    def observe(self, hits: list[Finding]) -> list[Finding]:
        """Record this window's hits; return the ``firing`` findings of new incidents."""
        out = []
        for h in hits:
            key = (h.rule, h.account_ids)
            inc = self._open.get(key)
            if inc is None:
                self._open[key] = _Incident(h, h.window_end_ts, h.score, 1)
                out.append(h)
            else:
                inc.last_hit_end_ts = max(inc.last_hit_end_ts, h.window_end_ts)
                inc.peak_score = max(inc.peak_score, h.score)
                inc.windows_hit += 1
                if _RANK.get(h.severity, 0) > _RANK.get(inc.first.severity, 0):
                    inc.first = replace(inc.first, severity=h.severity, summary=h.summary,
                                        evidence=dict(h.evidence, escalated_from=inc.first.severity))
                    out.append(replace(inc.first, window_end_ts=h.window_end_ts, score=h.score))
        return out

    def resolve_due(self, now_end_ts: int) -> list[Finding]:
        """``resolved`` findings for incidents quiet for ``cooldown_windows`` windows."""
        limit = self.cooldown_windows * self.window_ms
        due = [k for k, inc in self._open.items() if now_end_ts - inc.last_hit_end_ts >= limit]
        out = []
        for key in sorted(due):
            inc = self._open.pop(key)
            ev = dict(inc.first.evidence, windows_hit=inc.windows_hit,
                      peak_score=round(inc.peak_score, 4))
            out.append(replace(
                inc.first, status="resolved", window_end_ts=inc.last_hit_end_ts,
                score=inc.peak_score, evidence=ev,
                summary=f"Resolved after {self.cooldown_windows} quiet windows: {inc.first.summary}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"open": [
            {"first": {**asdict(inc.first), "account_ids": list(inc.first.account_ids)},
             "last_hit_end_ts": inc.last_hit_end_ts, "peak_score": inc.peak_score,
             "windows_hit": inc.windows_hit}
            for inc in self._open.values()]}

    def load_dict(self, state: dict[str, Any]) -> None:
        self._open = {}
        for d in state["open"]:
            first = Finding(**{**d["first"], "account_ids": tuple(d["first"]["account_ids"])})
            self._open[(first.rule, first.account_ids)] = _Incident(
                first, int(d["last_hit_end_ts"]), float(d["peak_score"]), int(d["windows_hit"]))
