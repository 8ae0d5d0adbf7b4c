"""Extraction over hours (extraction_yield, extraction_drift) and the severity policy, through
the partition monitor, on synthetic columns shaped after the behaviours they name."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from models.batch import RequestColumns
from models.incidents import Finding
from models.monitor import MonitorConfig, PartitionMonitor

W = 60_000
DAY = 86_400_000
T0 = 400 * DAY


def traffic(rng: np.random.Generator, account: str, t0: int, t1: int, rate_per_s: float, *,
            cv: float, long_share: float, cot: float, reasoning: float = 0.6,
            templated: bool = False) -> dict[str, np.ndarray | list[str]]:
    """Gamma-renewal arrivals with the given CV; a share of long answers (2000 tokens from a
    100-token prompt) with ``reasoning`` of them reasoning tokens, the rest short."""
    k = 1 / (cv * cv)
    gaps = rng.gamma(k, 1000 / (rate_per_s * k), size=int(rate_per_s * (t1 - t0) / 1000 * 1.5) + 10)
    ts = t0 + np.cumsum(gaps).astype(np.int64)
    ts = ts[ts < t1]
    n = len(ts)
    long = rng.random(n) < long_share
    completion = np.where(long, 2000, 120)
    fps = (np.full(n, 0x5A5A_1234_0000_FFFF, dtype=np.uint64) if templated
           else rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64))
    return dict(account_ids=[account] * n, ts=ts, prompt_tokens=np.full(n, 100),
                completion_tokens=completion,
                reasoning_tokens=np.where(long, int(2000 * reasoning), 0),
                cot=rng.random(n) < cot, prompt_fp=fps, has_fp=np.ones(n, bool),
                net_hash=np.full(n, 77), asn_hash=np.full(n, 5), ua_hash=np.full(n, 9),
                key_hash=np.full(n, hash(account) & 0xFFFF), model_hash=np.full(n, 3))


def merge(*parts: dict[str, np.ndarray | list[str]]) -> RequestColumns:
    cols = {k: (sum((list(p[k]) for p in parts), []) if k == "account_ids"
                else np.concatenate([np.asarray(p[k]) for p in parts])) for k in parts[0]}
    order = np.argsort(cols["ts"], kind="stable")
    out = {k: ([v[i] for i in order] if k == "account_ids" else v[order]) for k, v in cols.items()}
    out["dedup_key"] = np.arange(1, len(order) + 1, dtype=np.uint64)
    return RequestColumns.from_lists(**out)


def firing(cols: RequestColumns, records: dict[str, object]) -> list[Finding]:
    m = PartitionMonitor(MonitorConfig(), profiles=records.get)   # type: ignore[arg-type]
    out = m.step(cols).findings + m.flush()
    return [f for f in out if f.status == "firing"]


def young(created: int = T0 - DAY // 2) -> SimpleNamespace:
    return SimpleNamespace(created_ts=created, verified=False, tier="free")


def established() -> SimpleNamespace:
    return SimpleNamespace(created_ts=T0 - 400 * DAY, verified=True, tier="enterprise")


def test_question_bank_harvest_at_a_machine_rate_is_caught_without_templates() -> None:
    """The founding case: distinct prompts, long reasoning answers, a timer-like client."""
    rng = np.random.default_rng(1)
    cols = merge(traffic(rng, "harvest", T0, T0 + 40 * W, 0.5, cv=0.2, long_share=0.95, cot=0.5),
                 traffic(rng, "human", T0, T0 + 40 * W, 0.5, cv=4.0, long_share=0.3, cot=0.05))
    out = firing(cols, {"harvest": young(), "human": young()})
    rules = {(f.rule, f.account_ids) for f in out}
    assert ("extraction_yield", ("harvest",)) in rules
    assert not any("human" in f.account_ids for f in out)
    harvest = next(f for f in out if f.rule == "extraction_yield")
    assert harvest.severity == "critical"          # CoT asks and machine timing corroborate
    assert harvest.evidence["gap_spread"] < 0.8
    assert harvest.window_end_ts - T0 <= 5 * W     # about 30 requests in


def test_the_same_pull_from_a_bursty_human_without_cot_asks_is_not_alerted() -> None:
    rng = np.random.default_rng(2)
    cols = merge(traffic(rng, "researcher", T0, T0 + 60 * W, 0.5, cv=3.0, long_share=0.9, cot=0.2))
    assert firing(cols, {"researcher": young()}) == []


def test_an_established_customers_benchmark_run_is_at_most_info() -> None:
    """Templated, every prompt asking for reasoning, long answers: from a verified enterprise
    account with an honest history it is a lead, never a page."""
    rng = np.random.default_rng(3)
    history = traffic(rng, "enterprise", T0, T0 + 120 * W, 2.0, cv=2.0, long_share=0.05, cot=0.01)
    suite = traffic(rng, "enterprise", T0 + 120 * W, T0 + 160 * W, 2.0, cv=0.3, long_share=0.95,
                    cot=1.0, templated=True)
    out = firing(merge(history, suite), {"enterprise": established()})
    assert all(f.severity == "info" for f in out), [(f.rule, f.severity) for f in out]
    # the same run from an unverified day-old account pages
    rng = np.random.default_rng(3)
    fresh = traffic(rng, "fresh", T0 + 120 * W, T0 + 160 * W, 2.0, cv=0.3, long_share=0.95,
                    cot=1.0, templated=True)
    assert {f.severity for f in firing(merge(fresh), {"fresh": young()})} == {"critical"}


def test_extraction_added_to_established_use_drifts_against_its_own_past() -> None:
    rng = np.random.default_rng(4)
    honest = traffic(rng, "tenant", T0, T0 + 240 * W, 0.3, cv=2.0, long_share=0.05, cot=0.01)
    ramp = [traffic(rng, "tenant", T0 + (120 + 10 * i) * W, T0 + (130 + 10 * i) * W,
                    0.03 * (i + 1), cv=1.0, long_share=0.95, cot=0.6) for i in range(12)]
    out = firing(merge(honest, *ramp), {"tenant": established()})
    drift = [f for f in out if f.rule == "extraction_drift"]
    assert len(drift) == 1, [(f.rule, f.window_end_ts) for f in out]   # one incident
    assert drift[0].severity == "info"
    assert drift[0].window_end_ts >= T0 + 120 * W
    analysis = drift[0].evidence["anomaly_analyses"][0]
    assert analysis["baseline"] == "own history" and analysis["value"] > analysis["baseline_value"]
    # without the ramp: nothing
    rng = np.random.default_rng(4)
    calm = traffic(rng, "tenant", T0, T0 + 240 * W, 0.3, cv=2.0, long_share=0.05, cot=0.01)
    assert firing(merge(calm), {"tenant": established()}) == []
