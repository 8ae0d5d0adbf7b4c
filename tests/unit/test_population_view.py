"""The population view (models/coordination.py): swarms of quiet accounts, weak links, one alert."""

from __future__ import annotations

import numpy as np

from models.coordination import AccountSummary, CoordinationDetector
from models.incidents import Finding

W = 60_000
HOUR = 3_600_000
T0 = 10 * HOUR


def template(rng: np.random.Generator, base: int, flips: int = 2) -> int:
    fp = base
    for b in rng.choice(64, size=flips, replace=False).tolist():
        fp ^= 1 << b
    return fp


def swarm(rng: np.random.Generator, n: int, windows: int, *, every: int = 5,
          shared_net: bool = True, score: float = 0.7) -> list[AccountSummary]:
    """``n`` fresh accounts, each active one window in ``every``: one template family, two
    hosting networks, created within the same hour, starting together."""
    base = int(rng.integers(0, 2**63))
    out = []
    for i in range(n):
        phase = int(rng.integers(0, every))
        for w in range(phase, windows, every):
            out.append(AccountSummary(
                f"swarm-{i:03d}", T0 + w * W, T0 + (w + 1) * W, requests=1, extraction_score=score,
                template_fp=template(rng, base), net=(100 + i % 2) if shared_net else 0,
                ua=7, asn=14061, created_ts=T0 - HOUR + int(rng.integers(0, 20 * W)),
                active_from_ts=T0 + phase * W, xlike=score))
    return out


def honest(rng: np.random.Generator, n: int, windows: int) -> list[AccountSummary]:
    """Young honest accounts: diverse prompts, their own networks, all using one popular SDK
    on one cloud, created and starting at the same time (a hackathon)."""
    return [AccountSummary(f"honest-{i:03d}", T0 + w * W, T0 + (w + 1) * W, requests=3,
                           extraction_score=0.2, template_fp=int(rng.integers(1, 2**63)),
                           net=1000 + i, ua=7, asn=16509, created_ts=T0 - HOUR,
                           active_from_ts=T0, xlike=0.05)
            for i in range(n) for w in range(windows)]


def run(summaries: list[AccountSummary], det: CoordinationDetector | None = None) -> list[Finding]:
    det = det or CoordinationDetector(W)
    out: list[Finding] = []
    for s in sorted(summaries, key=lambda s: (s.window_start_ts, s.account_id)):
        out += det.add(s)
        out += det.close_ready()
    return out + det.flush()


def test_a_slow_swarm_of_quiet_accounts_is_one_cluster_named_whole() -> None:
    rng = np.random.default_rng(1)
    out = run(swarm(rng, 120, 60) + honest(rng, 40, 60))
    firing = [f for f in out if f.status == "firing"]
    assert {f.alert_id for f in firing} and len({f.alert_id for f in firing}) == 1
    named = {a for f in firing for a in f.account_ids}
    assert named == {f"swarm-{i:03d}" for i in range(120)}
    assert all(f.severity == "critical" and f.rule == "coordinated_accounts" for f in firing)
    assert firing[0].evidence["anomaly_analyses"][0]["value"] >= 5


def test_members_that_share_no_network_are_linked_by_what_they_do_share() -> None:
    rng = np.random.default_rng(2)
    out = run(swarm(rng, 60, 40, shared_net=False))
    named = {a for f in out if f.status == "firing" for a in f.account_ids}
    assert len(named) >= 57            # template x creation cohort, template x start


def test_honest_young_accounts_sharing_a_cloud_and_a_start_are_not_a_cluster() -> None:
    rng = np.random.default_rng(3)
    assert run(honest(rng, 80, 30)) == []


def test_a_swarm_that_does_not_look_like_extraction_is_not_alerted() -> None:
    rng = np.random.default_rng(4)
    assert run(swarm(rng, 80, 30, score=0.2)) == []


def test_a_members_own_finding_is_folded_into_the_cluster() -> None:
    rng = np.random.default_rng(5)
    summaries = swarm(rng, 60, 40)
    own = Finding.hit("extraction_yield", "warning", ("swarm-007",), 0.9, 0.3, T0 + 30 * W,
                      T0 + 31 * W, "s", {})
    outsider = Finding.hit("extraction_yield", "warning", ("loner",), 0.9, 0.3, T0 + 30 * W,
                           T0 + 31 * W, "s", {})
    summaries.append(AccountSummary("swarm-007", T0 + 30 * W, T0 + 31 * W, 0, 0.0,
                                    findings=(own.to_dict(),)))
    summaries.append(AccountSummary("loner", T0 + 30 * W, T0 + 31 * W, 0, 0.0,
                                    findings=(outsider.to_dict(),)))
    det = CoordinationDetector(W)
    out = run(summaries, det)
    assert [f.account_ids for f in out if f.rule == "extraction_yield"] == [("loner",)]
    assert [c.absorbed for c in det._clusters.values()] == [1]
    assert [f.window_end_ts for f in out if f.rule == "extraction_yield"] == [T0 + 31 * W]


def test_the_view_restored_anywhere_continues_like_one_that_never_stopped() -> None:
    rng = np.random.default_rng(6)
    summaries = sorted(swarm(rng, 50, 40) + honest(rng, 10, 40),
                       key=lambda s: (s.window_start_ts, s.account_id))
    ref = run(summaries)
    det = CoordinationDetector(W)
    out: list[Finding] = []
    for i, s in enumerate(summaries):
        out += det.add(s)
        out += det.close_ready()
        if i % 400 == 0:
            state = det.to_dict()
            det = CoordinationDetector(W)
            det.load_dict(state)
    out += det.flush()
    assert out == ref and ref
