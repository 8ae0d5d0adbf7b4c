"""What every detector sees (a closed window of one partition) and what it returns (hits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.peers import PeerGroups
from models.windows import WindowSummary

__all__ = ["Detector", "Hit", "StatefulDetector", "WindowContext"]


@dataclass(frozen=True, slots=True)
class WindowContext:
    """One closed window: features per active account (rows) plus each account's history
    as it stood *before* this window."""

    summary: WindowSummary
    features: dict[str, np.ndarray]       # FEATURES -> float64 per row
    account_ids: list[str]                # per row
    windows_seen: np.ndarray              # int per row: active windows before this one
    age_ms: np.ndarray                    # window end - first seen
    baseline_mean: np.ndarray             # (rows, len(BASELINE_FEATURES))
    baseline_std: np.ndarray
    warmup_windows: int
    peer_group: np.ndarray | None = None  # int per row: (tier, age band) id, see models.peers
    peers: PeerGroups | None = None       # names those ids
    trusted: np.ndarray | None = None     # bool per row: verified and 30+ days old
    untrusted: np.ndarray | None = None   # bool per row: no record, unverified or < 3 days old

    @property
    def start_ts(self) -> int:
        return self.summary.start_ts

    @property
    def end_ts(self) -> int:
        return self.summary.end_ts

    @property
    def warmed_up(self) -> np.ndarray:
        return self.windows_seen >= self.warmup_windows

    def is_untrusted(self) -> np.ndarray:
        """Untrusted rows (all of them when the monitor has no account information)."""
        if self.untrusted is None:
            return np.ones(len(self.account_ids), dtype=bool)
        return self.untrusted

    def is_trusted(self) -> np.ndarray:
        if self.trusted is None:
            return np.zeros(len(self.account_ids), dtype=bool)
        return self.trusted

    def slot(self, row: int) -> int:
        return int(self.summary.slots[row])


@dataclass(frozen=True, slots=True)
class Hit:
    """A detector's finding for one account in one window (before cooldown/dedup)."""

    rule: str
    severity: str                 # info | warning | critical
    row: int                      # row in the WindowContext
    score: float
    threshold: float
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Detector(Protocol):
    """A detector reads a closed window and returns hits; it may keep state of its own."""

    rule: str

    def detect(self, ctx: WindowContext) -> list[Hit]: ...


class StatefulDetector(Detector, Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def load_dict(self, state: dict[str, Any]) -> None: ...


def feature_evidence(ctx: WindowContext, row: int, names: tuple[str, ...]) -> dict[str, float]:
    """The named features of one row, rounded for humans."""
    return {n: round(float(ctx.features[n][row]), 4) for n in names}
