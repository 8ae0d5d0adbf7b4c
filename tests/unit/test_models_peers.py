"""Peer groups (tier, age band): bands at their edges, where the age comes from, the tier cap,
plain-data round trips."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from models.peers import (
    AGE_BANDS,
    OTHER_TIER,
    UNKNOWN_TIER,
    AccountProfile,
    PeerGroups,
    age_band,
)

HOUR, DAY = 3_600_000, 86_400_000
END = 1_000 * DAY


def wire(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.msgpack.decode(msgspec.msgpack.encode(d))
    return out


def labels(pg: PeerGroups, groups: np.ndarray) -> list[tuple[str, str]]:
    return [pg.label(g) for g in groups.tolist()]


def test_age_bands_at_their_edges() -> None:
    ages = np.array([-HOUR, 0, DAY - 1, DAY, 30 * DAY - 1, 30 * DAY, 5_000 * DAY])
    assert [AGE_BANDS[b] for b in age_band(ages).tolist()] == [
        "<1d", "<1d", "<1d", "1-30d", "1-30d", ">30d", ">30d"]


def test_created_ts_wins_over_first_seen_and_missing_records_are_unknown() -> None:
    records = {
        "old-ent": AccountProfile("enterprise", END - 400 * DAY),
        "new-free": AccountProfile("free", END - 5 * HOUR),
        "tier-only": AccountProfile("pro", None),          # age from first seen
        "age-only": AccountProfile(None, END - 10 * DAY),  # tier unknown
    }
    ids = ["old-ent", "new-free", "tier-only", "age-only", "no-record"]
    first_seen = np.full(len(ids), END - 2 * HOUR)     # this partition met them all 2 h ago
    pg = PeerGroups()
    got = pg.assign(ids, END, first_seen, records.get)
    assert labels(pg, got) == [("enterprise", ">30d"), ("free", "<1d"), ("pro", "<1d"),
                               (UNKNOWN_TIER, "1-30d"), (UNKNOWN_TIER, "<1d")]
    # no lookup at all: every account is of unknown tier and as old as this partition knows it
    assert labels(pg, pg.assign(ids, END, first_seen)) == [(UNKNOWN_TIER, "<1d")] * 5
    assert labels(pg, pg.assign(ids, END, first_seen, lambda _: None)) == [(UNKNOWN_TIER, "<1d")] * 5


def test_tier_names_are_normalised_and_ids_are_stable() -> None:
    pg = PeerGroups()
    a = pg.tier_id("Enterprise")
    assert pg.tier_id(" enterprise ") == a == pg.tier_id("ENTERPRISE")
    assert pg.tier_id("") == pg.tier_id(None) == pg.tier_id("   ") == 0
    assert pg.tier_id("Unknown") == 0 and pg.tier_id("other") == 1
    assert pg.tier_id("x" * 500) == pg.tier_id("x" * 32)        # long names are cut
    assert pg.tiers == [UNKNOWN_TIER, OTHER_TIER, "enterprise", "x" * 32]


def test_the_tier_cap_folds_overflow_into_other_and_memory_stays_bounded() -> None:
    pg = PeerGroups(max_tiers=4)
    first = [pg.tier_id(t) for t in ("free", "pro")]
    overflow = {pg.tier_id(f"tier-{i}") for i in range(10_000)}
    assert first == [2, 3] and overflow == {1}
    assert pg.tiers == [UNKNOWN_TIER, OTHER_TIER, "free", "pro"] and pg.n_groups == 12
    assert len(pg._index) == 4                      # nothing remembered about the overflow
    assert pg.tier_id("free") == 2                  # known tiers keep their group
    g = pg.assign(["a"], END, np.array([END]), {"a": AccountProfile("tier-77", None)}.get)
    assert labels(pg, g) == [(OTHER_TIER, "<1d")]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_tiers"):
        PeerGroups(max_tiers=1)


def test_round_trip_keeps_every_id() -> None:
    pg = PeerGroups(max_tiers=5)
    for t in ("pro", "free", "edu", "team", "enterprise"):
        pg.tier_id(t)
    snap = pg.to_dict()
    assert snap == {"max_tiers": 5, "tiers": [UNKNOWN_TIER, OTHER_TIER, "pro", "free", "edu"]}
    back = PeerGroups.from_dict(wire(snap))
    assert back.to_dict() == snap
    assert [back.tier_id(t) for t in ("pro", "free", "edu", "team", None)] == [2, 3, 4, 1, 0]
    assert [back.label(g) for g in range(back.n_groups)] == [pg.label(g) for g in range(pg.n_groups)]
