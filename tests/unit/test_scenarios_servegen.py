"""The ServeGen tenant table and the draws built on it.

The table's own columns are the reference: arrivals must give back a tenant's CV, hour
profile and 10-minute spread, token draws its quantiles and means, and a drawn background
its requested total with the data's heavy tail.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from streams.scenarios.servegen import (
    KINDS,
    QUANTILE_LEVELS,
    TenantShape,
    arrivals,
    draw_tenants,
    load_tenant_shapes,
    token_lengths,
)

DAY_MS = 86_400_000
T0 = 1_767_225_600_000      # 2026-01-01T00:00Z, a UTC midnight


def _data(name: str) -> str:
    return resources.files("streams.scenarios").joinpath("data", name).read_text()


def _table() -> dict:  # type: ignore[type-arg]
    return json.loads(_data("servegen_tenants.json"))


def _flat(shape: TenantShape, law: str, cv: float, rate: float = 1.0) -> TenantShape:
    """``shape`` with a constant rate: what is left to measure is the renewal process."""
    return replace(shape, arrival_law=law, cv=cv, hourly_rate_per_s=(rate,) * 24,
                   window_rate_cv=0.0, mean_rate_per_s=rate)


def _gap_cv(ts: np.ndarray) -> float:
    gaps = np.diff(ts).astype(float)
    return float(gaps.std() / gaps.mean())


# -- the table -----------------------------------------------------------------------------
def test_table_names_its_source_and_ships_its_licence() -> None:
    table = _table()
    src = table["source"]
    assert src["repository"] == "https://github.com/alibaba/ServeGen"
    assert len(src["commit"]) == 40 and int(src["commit"], 16) >= 0
    assert "Apache-2.0" in src["licence"]
    assert "Apache License" in _data("LICENSE-ServeGen.txt")
    assert src["commit"] in _data("README.md")
    assert len(_data("servegen_tenants.json").encode()) < 1_000_000
    assert tuple(table["quantile_levels"]) == QUANTILE_LEVELS


def test_every_kind_loads_with_unique_real_tenant_ids() -> None:
    counts = {}
    for kind in KINDS:
        shapes = load_tenant_shapes(kind)
        assert all(s.kind == kind for s in shapes)
        counts[kind] = len(shapes)
    ids = [s.tenant_id for k in KINDS for s in load_tenant_shapes(k)]
    assert len(ids) == len(set(ids)) == len(_table()["tenants"])
    assert counts["language"] > 100 and counts["reasoning"] > 30
    with pytest.raises(ValueError):
        load_tenant_shapes("reason")


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_are_sane(kind: str) -> None:
    for s in load_tenant_shapes(kind):
        assert s.mean_rate_per_s > 0
        assert len(s.hourly_rate_per_s) == 24 and min(s.hourly_rate_per_s) >= 0
        # two columns derived separately (total requests / span, per-hour means) agree
        assert np.mean(s.hourly_rate_per_s) == pytest.approx(s.mean_rate_per_s, rel=0.01)
        assert s.window_rate_cv >= 0 and 0 < s.active_share <= 1
        assert s.cv >= 0 and s.fit_shape > 0 and s.arrival_law in ("Gamma", "Weibull")
        assert s.tokens_from in ("tenant", "model_pool")
        for q in (s.prompt_quantiles, s.completion_quantiles):
            assert len(q) == len(QUANTILE_LEVELS)
            assert all(a <= b for a, b in zip(q, q[1:], strict=False)) and q[0] >= 0
            assert q[-1] > q[0] or q[-1] == q[0] == q[5]
        if kind == "reasoning":
            r = s.reasoning_share_quantiles
            assert r is not None and len(r) == len(QUANTILE_LEVELS)
            assert 0 <= r[0] <= r[-1] <= 1 and all(a <= b for a, b in zip(r, r[1:], strict=False))
        else:
            assert s.reasoning_share_quantiles is None


def test_table_is_heavy_tailed_like_the_source() -> None:
    rates = np.array([s.mean_rate_per_s for s in load_tenant_shapes("language")])
    assert rates.max() / rates.sum() > 0.2                     # one tenant: a fifth or more
    top_decile = np.sort(rates)[::-1][: len(rates) // 10].sum() / rates.sum()
    assert top_decile > 0.6
    assert rates.max() / np.median(rates) > 1000


# -- draw_tenants ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_draw_tenants_keeps_ratios_top_tenant_and_total(seed: int) -> None:
    pool = {s.tenant_id: s for k in KINDS for s in load_tenant_shapes(k)}
    pool_rates = np.array([s.mean_rate_per_s for s in pool.values()])
    tenants = draw_tenants(np.random.default_rng(seed), 50, total_rate_per_s=5.0)
    assert len(tenants) == 50 and len({t.tenant_id for t in tenants}) == 50
    rates = np.array([t.mean_rate_per_s for t in tenants])
    assert rates.sum() == pytest.approx(5.0)
    # one factor for every tenant: rank and ratios preserved, no uniformisation
    factors = rates / np.array([pool[t.tenant_id].mean_rate_per_s for t in tenants])
    assert np.allclose(factors, factors[0])
    assert list(rates) == sorted(rates, reverse=True)
    assert pool[tenants[0].tenant_id].mean_rate_per_s == pool_rates.max()   # the giant is in
    # a subset holding the biggest tenant is at least as top-heavy as the whole pool
    assert rates[0] / rates.sum() >= pool_rates.max() / pool_rates.sum()
    hourly = np.array([t.hourly_rate_per_s for t in tenants])
    assert hourly.mean(axis=1) == pytest.approx(rates, rel=0.01)


@pytest.mark.parametrize("seed", [0, 1])
def test_drawn_background_sends_the_requested_total_over_two_days(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tenants = draw_tenants(rng, 40, total_rate_per_s=4.0)
    n = sum(len(arrivals(rng, t, T0, T0 + 2 * DAY_MS)) for t in tenants)
    assert n / (2 * 86_400) == pytest.approx(4.0, rel=0.15)


def test_draw_tenants_resamples_beyond_the_pool_and_checks_arguments() -> None:
    size = sum(len(load_tenant_shapes(k)) for k in KINDS)
    tenants = draw_tenants(np.random.default_rng(0), size + 25, total_rate_per_s=10.0)
    assert len(tenants) == size + 25 and len({t.tenant_id for t in tenants}) == size
    assert sum(t.mean_rate_per_s for t in tenants) == pytest.approx(10.0)
    reasoning = draw_tenants(np.random.default_rng(0), 10, 1.0, kinds=("reasoning",), keep_top=False)
    assert {t.kind for t in reasoning} == {"reasoning"}
    with pytest.raises(ValueError):
        draw_tenants(np.random.default_rng(0), 0, 1.0)
    with pytest.raises(ValueError):
        draw_tenants(np.random.default_rng(0), 5, 0.0)


# -- arrivals -------------------------------------------------------------------------------
@pytest.mark.parametrize(("law", "cv"), [("Gamma", 3.0), ("Weibull", 3.0), ("Gamma", 0.5),
                                         ("Weibull", 1.5)])
def test_arrivals_reproduce_the_cv_of_the_law(law: str, cv: float) -> None:
    shape = _flat(load_tenant_shapes("language")[0], law, cv)
    ts = arrivals(np.random.default_rng(11), shape, T0, T0 + 100_000_000)   # ~100k requests
    assert len(ts) == pytest.approx(100_000, rel=0.05)
    assert _gap_cv(ts) == pytest.approx(cv, rel=0.2)


def test_arrivals_reproduce_a_real_tenants_own_cv() -> None:
    for kind in KINDS:
        real = next(s for s in load_tenant_shapes(kind) if 1.5 < s.cv < 5)
        shape = _flat(real, real.arrival_law, real.cv)
        ts = arrivals(np.random.default_rng(5), shape, T0, T0 + 100_000_000)
        assert _gap_cv(ts) == pytest.approx(real.cv, rel=0.2), real.tenant_id


def test_arrivals_follow_the_hour_of_day_profile() -> None:
    # the language tenant with the deepest day/night swing among those active every hour
    shapes = [s for s in load_tenant_shapes("language") if min(s.hourly_rate_per_s) > 0]
    swing = max(shapes, key=lambda s: max(s.hourly_rate_per_s) / min(s.hourly_rate_per_s))
    shape = replace(swing.scaled(2.0 / swing.mean_rate_per_s), window_rate_cv=0.0, cv=1.0)
    ts = arrivals(np.random.default_rng(2), shape, T0, T0 + 7 * DAY_MS)
    per_hour = np.bincount((ts - T0) // 3_600_000 % 24, minlength=24) / (7 * 3600)
    expected = np.array(shape.hourly_rate_per_s)
    assert max(expected) / min(expected) > 2
    assert per_hour == pytest.approx(expected, rel=0.1, abs=0.02)


def test_arrivals_spread_10_minute_rates_like_the_tenant() -> None:
    real = next(s for s in load_tenant_shapes("language") if 0.5 < s.window_rate_cv < 1.5)
    shape = replace(real.scaled(10.0 / real.mean_rate_per_s), cv=1.0)
    ts = arrivals(np.random.default_rng(4), shape, T0, T0 + 3 * DAY_MS)
    slot = (ts - T0) // 600_000
    counts = np.bincount(slot, minlength=3 * 144)
    base = np.array(shape.hourly_rate_per_s)[np.arange(3 * 144) // 6 % 24] * 600
    spread = (counts / base).std()
    assert spread == pytest.approx(real.window_rate_cv, rel=0.2)


def test_arrivals_are_seeded_sorted_and_inside_the_window() -> None:
    shape = load_tenant_shapes("reasoning")[0]
    a = arrivals(np.random.default_rng(9), shape, T0 + 123, T0 + DAY_MS)
    b = arrivals(np.random.default_rng(9), shape, T0 + 123, T0 + DAY_MS)
    c = arrivals(np.random.default_rng(10), shape, T0 + 123, T0 + DAY_MS)
    assert a.dtype == np.int64 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert (np.diff(a) >= 0).all() and a.min() >= T0 + 123 and a.max() < T0 + DAY_MS
    assert len(arrivals(np.random.default_rng(9), replace(shape, hourly_rate_per_s=(0.0,) * 24),
                        T0, T0 + DAY_MS)) == 0


# -- token_lengths --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_token_lengths_match_the_tenants_quantiles_and_means(kind: str) -> None:
    rows = {r["tenant"]: r for r in _table()["tenants"]}
    levels = np.array(QUANTILE_LEVELS)
    inner = (levels >= 0.05) & (levels <= 0.95)
    own = [s for s in load_tenant_shapes(kind) if s.tokens_from == "tenant"][:5]
    for s in own:
        prompt, completion, reasoning = token_lengths(np.random.default_rng(8), s, 200_000)
        for drawn, table, col in ((prompt, s.prompt_quantiles, "prompt_tokens"),
                                  (completion, s.completion_quantiles, "completion_tokens")):
            # the table's quantile at level L is the smallest value whose CDF reaches L:
            # about L of the draws fall below it and about L at or below it
            for level, want in zip(levels[inner], np.array(table)[inner], strict=True):
                below, at_or_below = (drawn < want).mean(), (drawn <= want).mean()
                assert below <= level + 0.01 and at_or_below >= level - 0.01, (s.tenant_id, col, level)
            assert drawn.min() >= table[0] and drawn.max() <= table[-1]
            assert drawn.mean() == pytest.approx(rows[s.tenant_id][col]["mean"], rel=0.15)
        if kind == "reasoning":
            assert (reasoning <= completion).all() and (reasoning >= 0).all()
            share = reasoning.sum() / completion.sum()
            assert share == pytest.approx(rows[s.tenant_id]["reasoning_share"]["mean"], abs=0.03)
        else:
            assert not reasoning.any()


def test_token_lengths_are_seeded() -> None:
    shape = load_tenant_shapes("reasoning")[3]
    a = token_lengths(np.random.default_rng(1), shape, 500)
    b = token_lengths(np.random.default_rng(1), shape, 500)
    c = token_lengths(np.random.default_rng(2), shape, 500)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert all(x.dtype == np.int64 and len(x) == 500 for x in a)
