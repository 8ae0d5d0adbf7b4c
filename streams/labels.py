"""Scenario labels: what ``xwatch simulate`` knows about the traffic it wrote.

A labels file is one JSON object (:class:`ScenarioLabels`) saying which accounts belong to
which campaign or confounder and when each started. ``xwatch evaluate`` and the replay
tool's backtest mode score alerts against it.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

__all__ = ["CampaignLabel", "ScenarioLabels", "read_labels", "write_labels"]


class CampaignLabel(msgspec.Struct, frozen=True, kw_only=True):
    name: str                 # unique within the scenario, e.g. "solo_extraction"
    kind: str                 # campaign kind (solo_extraction, hydra_cluster, ...) or confounder kind
    accounts: list[str]
    start_ts: int             # event time (epoch ms) the campaign starts
    end_ts: int
    confounder: bool = False  # True: honest traffic that must NOT be alerted on


class ScenarioLabels(msgspec.Struct, frozen=True, kw_only=True):
    schema: str = "xwatch.labels/v1"
    scenario: str
    seed: int
    start_ts: int
    end_ts: int
    events: int
    benign_accounts: list[str]         # every honest account, confounders included
    campaigns: list[CampaignLabel]
    biggest_benign_account: str | None = None

    @property
    def attacks(self) -> list[CampaignLabel]:
        return [c for c in self.campaigns if not c.confounder]

    @property
    def confounders(self) -> list[CampaignLabel]:
        return [c for c in self.campaigns if c.confounder]


def write_labels(labels: ScenarioLabels, path: str | Path) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(labels)) + b"\n")


def read_labels(path: str | Path) -> ScenarioLabels:
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=ScenarioLabels)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: not a labels file ({exc})") from exc
