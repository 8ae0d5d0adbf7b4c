"""The ``wild`` scenario: randomised per seed, deterministic per seed, every kind labelled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streams.scenarios.wild import ATTACK_KINDS, CONFOUNDER_KINDS, build_wild
from streams.simulate import NEW_MODEL, SCENARIOS, Scenario, build_scenario

SMALL: dict[str, Any] = {"duration_s": 2400, "accounts": 40, "total_rate": 8.0}


@pytest.fixture(scope="module")
def small() -> dict[int, Scenario]:
    return {seed: build_wild(seed, **SMALL) for seed in (1, 2, 3)}


def test_registered_in_simulate() -> None:
    assert "wild" in SCENARIOS
    s = build_scenario("wild", seed=4, **SMALL)
    assert s.name == "wild" and s.labels.scenario == "wild" and s.labels.seed == 4
    assert s.labels.end_ts - s.labels.start_ts == SMALL["duration_s"] * 1000


def test_deterministic_per_seed(small: dict[int, Scenario]) -> None:
    a, b = small[1], build_wild(1, **SMALL)
    assert a.labels == b.labels
    assert np.array_equal(a.traffic.ts, b.traffic.ts)
    assert a.traffic.account == b.traffic.account and a.traffic.ip == b.traffic.ip
    assert np.array_equal(a.traffic.fp, b.traffic.fp)
    assert np.array_equal(a.traffic.completion_tokens, b.traffic.completion_tokens)
    assert a.account_records == b.account_records


def test_parameters_differ_across_seeds(small: dict[int, Scenario]) -> None:
    def shape(s: Scenario) -> dict[str, tuple[int, int, int]]:
        return {c.kind: (c.start_ts - s.labels.start_ts, c.end_ts - c.start_ts, len(c.accounts))
                for c in s.labels.campaigns}
    one, two = shape(small[1]), shape(small[2])
    differ = sum(one[k] != two[k] for k in one)
    assert differ >= len(one) - 2
    assert set(small[1].labels.benign_accounts).isdisjoint(small[2].labels.benign_accounts)
    assert len(small[1].traffic) != len(small[2].traffic)


def test_every_kind_labelled(small: dict[int, Scenario]) -> None:
    for s in small.values():
        kinds = {c.kind: c for c in s.labels.campaigns}
        assert sorted(kinds) == sorted(ATTACK_KINDS + CONFOUNDER_KINDS)
        assert len(s.labels.campaigns) == len(kinds)
        for c in s.labels.campaigns:
            assert c.name == c.kind and c.accounts
            assert c.confounder == (c.kind in CONFOUNDER_KINDS)
            assert s.labels.start_ts <= c.start_ts <= c.end_ts <= s.labels.end_ts + 1


def test_labelled_accounts_appear_in_traffic(small: dict[int, Scenario]) -> None:
    for s in small.values():
        seen = set(s.traffic.account)
        for c in s.labels.campaigns:
            missing = set(c.accounts) - seen
            assert not missing, (c.kind, sorted(missing)[:3])


def test_roles_and_records(small: dict[int, Scenario]) -> None:
    for s in small.values():
        benign = set(s.labels.benign_accounts)
        assert len(benign) == len(s.labels.benign_accounts)
        attackers = [a for c in s.labels.attacks for a in c.accounts]
        assert len(set(attackers)) == len(attackers)
        assert benign.isdisjoint(attackers)
        for c in s.labels.confounders:
            assert set(c.accounts) <= benign
        ids = [r.account_id for r in s.account_records]
        assert len(ids) == len(set(ids))
        assert set(s.traffic.account) <= set(ids) == benign | set(attackers)
        assert s.labels.biggest_benign_account in benign
        assert all(a.startswith("acct-") for a in ids)


def test_events_sorted_and_sane(small: dict[int, Scenario]) -> None:
    for s in small.values():
        t = s.traffic
        assert len(t) == s.labels.events > 0
        assert bool((np.diff(t.ts) >= 0).all())
        assert bool((t.reasoning_tokens <= t.completion_tokens).all())
        assert bool((t.prompt_tokens >= 0).all()) and set(np.unique(t.status)) <= {200, 429, 500}
        release = next(c for c in s.labels.campaigns if c.kind == "model_pivot").start_ts
        new = np.array([m == NEW_MODEL for m in t.model])
        assert new.any() and int(t.ts[new].min()) >= release


def test_attack_accounts_created_before_they_act(small: dict[int, Scenario]) -> None:
    s = small[2]
    created = {r.account_id: r.created_ts or 0 for r in s.account_records}
    first: dict[str, int] = {}
    for a, ts in zip(s.traffic.account, s.traffic.ts.tolist(), strict=True):
        first.setdefault(a, ts)
    for c in s.labels.attacks:
        for a in c.accounts:
            assert created[a] < first[a], c.kind
