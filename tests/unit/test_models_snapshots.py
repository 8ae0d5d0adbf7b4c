"""Snapshot round trips: ``to_dict`` -> msgpack -> ``from_dict`` and carry on, as after a restart.

The property everywhere: a component restored from its snapshot at any point and fed the rest
of the input ends in the same state, with the same outputs, as one that never stopped. The
snapshots themselves must be plain data (no numpy objects, no pickles).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import PageHinkley

from models.accounts import BASELINE_FEATURES, AccountTable
from models.batch import RequestColumns
from models.detectors.base import Hit, WindowContext
from models.detectors.drift import BehaviorDrift, PageHinkleyState
from models.detectors.population import PopulationOutlier, scaled_features
from models.incidents import Finding, IncidentTracker
from models.monitor import MonitorConfig, PartitionMonitor
from models.peers import AccountProfile, PeerGroups, ProfileLookup
from models.templates import EMPTY
from models.windows import BITMAPS, COUNTERS, WindowAccumulator, WindowSummary

W = 60_000
PLAIN = (dict, list, str, int, float, bool, bytes, type(None))
FEW = settings(max_examples=8, deadline=None, database=None)
SOME = settings(max_examples=30, deadline=None, database=None)


def wire(d: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot looks like after a trip through the changelog."""
    out: dict[str, Any] = msgspec.msgpack.decode(msgspec.msgpack.encode(d))
    return out


def non_plain(obj: Any, path: str = "$") -> list[str]:
    """Paths (with type names) of everything in ``obj`` that is not plain data."""
    t = type(obj)
    if t not in PLAIN:
        return [f"{path}: {t.__name__}"]
    if t is dict:
        return [bad for k, v in obj.items()
                for bad in non_plain(k, f"{path}.<key>") + non_plain(v, f"{path}.{k}")]
    if t is list:
        return [bad for v in obj for bad in non_plain(v, f"{path}[]")][:5]
    return []


def test_non_plain_finds_what_it_should() -> None:
    assert non_plain({"a": [1, 2.0, "x", b"y", None, True, {"b": []}]}) == []
    assert non_plain({"a": np.float64(1.0)}) == ["$.a: float64"]
    assert non_plain({"a": [(1, 2)]}) == ["$.a[]: tuple"]
    assert non_plain({"a": np.zeros(2)}) == ["$.a: ndarray"]
    assert non_plain({1: object()})[0] == "$.1: object"


# -- a stream that exercises every piece of state --------------------------------------------------
def campaign_stream(seed: int = 5) -> RequestColumns:
    """12 ordinary accounts for 25 windows (enough rows to warm the population model), a
    templated extraction (windows 8-12), a behaviour drift (low until 12, high after), a
    logit probe (14-15); shuffled up to 20 s, 20 re-sent duplicates, 3 late events."""
    rng = np.random.default_rng(seed)
    parts = []

    def add(acct: str, w0: int, w1: int, per_w: int, *, tpl: bool = False,
            comp: tuple[int, int] = (150, 300), cot: float = 0.0, reasoning: float = 0.0,
            logprobs: float = 0.0, bias: float = 0.0) -> None:
        n = per_w * (w1 - w0)
        fps = rng.integers(0, 2**62, n).astype(np.uint64)
        if tpl:
            fps = np.uint64(0xABCD_0123_4567_89EF) ^ (
                np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64))
        c = rng.integers(*comp, n)
        h = sum(map(ord, acct)) * 7919
        parts.append(dict(
            account_ids=np.array([acct] * n, dtype=object), ts=rng.integers(w0 * W, w1 * W, n),
            prompt_tokens=rng.integers(100, 400, n), completion_tokens=c,
            reasoning_tokens=(c * reasoning).astype(np.int64),
            key_hash=np.full(n, h), net_hash=np.full(n, h + 1), ua_hash=np.full(n, h + 2),
            model_hash=np.full(n, 9), prompt_fp=fps, has_fp=np.ones(n, bool),
            cot=rng.random(n) < cot, logprobs=rng.random(n) < logprobs,
            logit_bias=rng.random(n) < bias))

    for i in range(12):
        add(f"bg-{i}", 0, 25, 25)
    add("ext", 8, 13, 60, tpl=True, comp=(1200, 2000), cot=0.7, reasoning=0.5)
    add("drifter", 0, 12, 30, comp=(55, 70))
    add("drifter", 12, 21, 30, tpl=True, comp=(55, 70), cot=0.42, reasoning=0.35)
    add("probe", 14, 16, 80, comp=(1, 5), logprobs=1.0, bias=0.8)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(cols["ts"])
    cols["dedup_key"] = np.arange(1, n + 1, dtype=np.uint64)
    order = list(np.argsort(cols["ts"] + rng.integers(0, 20_000, n), kind="stable"))
    for d in rng.choice(n, 20, replace=False).tolist():
        order.insert(min(len(order), order.index(d) + int(rng.integers(1, 50))), d)
    for d in rng.choice(n, 3, replace=False).tolist():
        pos = next((i for i, j in enumerate(order) if cols["ts"][j] > cols["ts"][d] + 3 * W), n)
        order.insert(pos, d)
    idx = np.array(order)
    out = {k: v[idx] for k, v in cols.items()}
    out["account_ids"] = out["account_ids"].tolist()
    return RequestColumns.from_lists(**out)


STREAM = campaign_stream()


def steps(m: PartitionMonitor, cols: RequestColumns, a: int, b: int,
          size: int) -> list[Finding]:
    out: list[Finding] = []
    for x in range(a, b, size):
        sel = np.arange(x, min(x + size, b))
        out += m.step(cols.take(sel), offsets=sel).findings
    return out


def restore(snapshot: dict[str, Any], cols: RequestColumns, end: int,
            profiles: ProfileLookup | None = None) -> PartitionMonitor:
    """What the shell does after a restart: restore, then re-read [dedup_from_offset, end)
    into the event_id index only."""
    m = PartitionMonitor.from_dict(wire(snapshot), profiles=profiles)
    start = m.dedup_rebuild_from
    if start is not None and start < end:
        sel = np.arange(start, end)
        m.dedup.check_and_add(cols.dedup_key[sel], cols.ts[sel], sel)
    return m


@functools.cache
def reference() -> tuple[list[Finding], dict[str, Any]]:
    """Findings and final snapshot of a monitor that never stopped."""
    m = PartitionMonitor(MonitorConfig(corroboration=False))   # raw hits: every detector shows
    findings = steps(m, STREAM, 0, len(STREAM), 500) + m.flush()
    return findings, m.to_dict()


@pytest.fixture(scope="module")
def never_stopped() -> tuple[list[Finding], dict[str, Any]]:
    return reference()


def test_the_stream_exercises_every_piece_of_state(
        never_stopped: tuple[list[Finding], dict[str, Any]]) -> None:
    findings, snap = never_stopped
    stories = {(f.rule, f.account_ids[0]) for f in findings}
    assert stories >= {
        ("templated_extraction", "ext"), ("behavior_drift", "drifter"), ("logit_probe", "probe")}
    assert {a for _, a in stories} == {"ext", "drifter", "probe"}, stories
    assert snap["detectors"]["population_outlier"]["seen"] > 250          # HST has masses
    assert len(snap["detectors"]["behavior_drift"]["slots"]) >= 14
    assert snap["counters"]["duplicates"] >= 15 and snap["counters"]["late"] >= 3


@FEW
@given(data=st.data())
def test_monitor_restored_anywhere_continues_like_one_that_never_stopped(
        data: st.DataObject) -> None:
    ref_findings, ref_snap = reference()
    n = len(STREAM)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=3))))
    size = data.draw(st.sampled_from([97, 500, 3000]))
    m = PartitionMonitor(MonitorConfig(corroboration=False))
    findings: list[Finding] = []
    for a, b in zip([0, *cuts[:-1]], cuts, strict=True):
        findings += steps(m, STREAM, a, b, size)
        snap = m.to_dict()
        assert non_plain(snap) == []
        m = restore(snap, STREAM, b)
        assert m.to_dict() == snap                 # nothing lost on the way
    findings += steps(m, STREAM, cuts[-1], n, size) + m.flush()
    assert [(f.alert_id, f.status, f.score) for f in findings] == [
        (f.alert_id, f.status, f.score) for f in ref_findings]
    assert findings == ref_findings
    assert m.to_dict() == ref_snap


def test_restore_without_the_dedup_reread_counts_resent_events_again(
        never_stopped: tuple[list[Finding], dict[str, Any]]) -> None:
    """Why ``dedup_from_offset`` exists: the event_id index itself is not in the snapshot."""
    _, ref_snap = never_stopped
    seen: set[int] = set()
    resent = []
    for i, k in enumerate(STREAM.dedup_key.tolist()):
        if k in seen:
            resent.append(i)
        seen.add(k)
    cut = resent[len(resent) // 2]           # the second copy of this one comes right after
    m = PartitionMonitor(MonitorConfig(corroboration=False))
    steps(m, STREAM, 0, cut, 500)
    snap = m.to_dict()
    assert isinstance(snap["dedup_from_offset"], int) and 0 <= snap["dedup_from_offset"] < cut
    blind = PartitionMonitor.from_dict(wire(snap))
    steps(blind, STREAM, cut, len(STREAM), 500)
    blind.flush()
    assert blind.counters.duplicates < ref_snap["counters"]["duplicates"]
    assert blind.counters.events > ref_snap["counters"]["events"]


def test_monitor_snapshot_is_plain_data(
        never_stopped: tuple[list[Finding], dict[str, Any]]) -> None:
    _, snap = never_stopped
    assert snap["schema_version"] == 1
    assert non_plain(snap) == []
    assert PartitionMonitor.from_dict(wire(snap)).to_dict() == snap


def test_monitor_snapshot_survives_msgpack_unchanged(
        never_stopped: tuple[list[Finding], dict[str, Any]]) -> None:
    _, snap = never_stopped
    assert non_plain(snap) == []
    assert wire(snap) == snap


def test_monitor_rejects_unknown_snapshot_versions(
        never_stopped: tuple[list[Finding], dict[str, Any]]) -> None:
    _, snap = never_stopped
    for version in (None, 0, 2, "1"):
        with pytest.raises(ValueError, match="snapshot version"):
            PartitionMonitor.from_dict({**snap, "schema_version": version})


PROFILES = {f"bg-{i}": AccountProfile("pro" if i % 3 else "enterprise", -400 * 86_400_000)
            for i in range(12)}
PROFILES |= {"ext": AccountProfile("free", -3_600_000), "drifter": AccountProfile("Pro", None)}


@functools.cache
def reference_with_profiles() -> tuple[list[Finding], dict[str, Any]]:
    m = PartitionMonitor(MonitorConfig(), profiles=PROFILES.get)
    findings = steps(m, STREAM, 0, len(STREAM), 500) + m.flush()
    return findings, m.to_dict()


@pytest.mark.parametrize("cut", [len(STREAM) // 3, 2 * len(STREAM) // 3])
def test_monitor_with_peer_groups_restored_continues_like_one_that_never_stopped(cut: int) -> None:
    ref_findings, ref_snap = reference_with_profiles()
    assert ref_snap["peer_groups"]["tiers"] == ["unknown", "other", "pro", "enterprise", "free"]
    po = ref_snap["detectors"]["population_outlier"]
    assert sum(n > 0 for n in po["peer_n"]) >= 3          # several groups have moments
    m = PartitionMonitor(MonitorConfig(), profiles=PROFILES.get)
    findings = steps(m, STREAM, 0, cut, 500)
    snap = m.to_dict()
    assert non_plain(snap) == []
    m = restore(snap, STREAM, cut, PROFILES.get)
    assert m.to_dict() == snap
    findings += steps(m, STREAM, cut, len(STREAM), 500) + m.flush()
    assert findings == ref_findings
    assert m.to_dict() == ref_snap


def test_monitor_snapshot_from_before_peer_groups_still_loads(
        never_stopped: tuple[list[Finding], dict[str, Any]]) -> None:
    _, snap = never_stopped
    old = {k: v for k, v in snap.items() if k != "peer_groups"}
    po = snap["detectors"]["population_outlier"]
    old["detectors"] = {**snap["detectors"], "population_outlier": {
        k: v for k, v in po.items() if not k.startswith("peer_")}}
    m = PartitionMonitor.from_dict(wire(old))
    assert m.peers.tiers == ["unknown", "other"]
    restored = m.to_dict()["detectors"]["population_outlier"]
    assert restored["peer_n"] == [] and restored["pop_mean"] == po["pop_mean"]
    assert restored["masses"] == po["masses"]


# -- components ---------------------------------------------------------------------------------
def window_events(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ev = {"slots": rng.choice(rng.choice(200, 20, replace=False), n).astype(np.int64),
          "ts": rng.integers(0, W, n), "fps": rng.integers(0, 2**62, n).astype(np.uint64)}
    for name in COUNTERS:
        ev[name] = np.ones(n, np.int64) if name == "n" else rng.integers(0, 900, n)
    for name in BITMAPS:
        ev["h_" + name] = rng.integers(0, 2**32, n, dtype=np.uint32)
    return ev


def feed_window(acc: WindowAccumulator, ev: dict[str, np.ndarray], a: int, b: int) -> None:
    s = slice(a, b)
    acc.add(ev["slots"][s], {k: ev[k][s] for k in COUNTERS}, {k: ev["h_" + k][s] for k in BITMAPS},
            ev["ts"][s])
    acc.add_fingerprints(ev["slots"][s], ev["fps"][s])


@SOME
@given(seed=st.integers(0, 1000), n=st.integers(1, 300), data=st.data())
def test_window_accumulator_round_trip(seed: int, n: int, data: st.DataObject) -> None:
    ev = window_events(seed, n)
    cut = data.draw(st.integers(0, n))
    ref = WindowAccumulator(0, W)
    feed_window(ref, ev, 0, n)
    acc = WindowAccumulator(0, W)
    feed_window(acc, ev, 0, cut)
    snap = acc.to_dict()
    assert non_plain(snap) == []
    acc = WindowAccumulator.from_dict(wire(snap))
    assert acc.to_dict() == snap
    feed_window(acc, ev, cut, n)
    assert acc.to_dict() == ref.to_dict()
    a, r = acc.close(), ref.close()
    assert np.array_equal(a.slots, r.slots) and np.array_equal(a.fp_sample, r.fp_sample)
    assert all(np.array_equal(a.counters[k], r.counters[k]) for k in COUNTERS)


@SOME
@given(seed=st.integers(0, 1000), data=st.data())
def test_account_table_round_trip(seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    windows = []
    for w in range(12):
        ids = [f"u{i}" for i in rng.integers(0, 90, int(rng.integers(1, 40)))]
        windows.append((ids, rng.integers(0, 2**40, len(ids)), w,
                        {b: rng.integers(0, 2**63, 90).astype(np.uint64)
                         for b in ("nets", "uas", "keys", "models")},
                        rng.gamma(2.0, 2.0, (90, len(BASELINE_FEATURES)))))
    cut = data.draw(st.integers(0, len(windows)))

    def apply(t: AccountTable, part: list[Any]) -> list[list[int]]:
        got = []
        for ids, ts, w, bitmaps, x in part:
            slots = t.slots_for(ids, ts)
            got.append(slots.tolist())
            active = np.unique(slots)
            t.observe_window(active, (w + 1) * W, {k: v[: len(active)] for k, v in bitmaps.items()},
                             x[: len(active)])
        return got

    ref = AccountTable()
    ref_slots = apply(ref, windows)
    t = AccountTable()
    got = apply(t, windows[:cut])
    snap = t.to_dict()
    assert non_plain(snap) == []
    t = AccountTable.from_dict(wire(snap))
    assert t.to_dict() == snap
    got += apply(t, windows[cut:])
    assert got == ref_slots
    assert t.to_dict() == ref.to_dict()
    assert len(t) == len(ref) and t.index == ref.index


@SOME
@given(xs=st.lists(st.floats(0.0, 1.0, allow_nan=False), max_size=60),
       jump=st.integers(0, 60), cut=st.integers(0, 80), min_instances=st.integers(1, 8))
def test_page_hinkley_round_trip_and_river_parity(xs: list[float], jump: int, cut: int,
                                                  min_instances: int) -> None:
    xs = [x * 0.2 + (0.6 if i >= jump else 0.0) for i, x in enumerate(xs)]
    params = dict(min_instances=min_instances, delta=0.02, threshold=1.0)
    river = PageHinkley(mode="up", **params)  # type: ignore[arg-type]
    expected = []
    for x in xs:
        river.update(x)
        expected.append(bool(river.drift_detected))

    ph = PageHinkleyState(**params)  # type: ignore[arg-type]
    flags = [ph.update(x) for x in xs[:cut]]
    saved = msgspec.msgpack.decode(msgspec.msgpack.encode(ph.to_list()))
    assert non_plain(saved) == []
    ph = PageHinkleyState.from_list(saved, **params)
    assert ph.to_list() == saved or math.isinf(saved[4])      # inf survives as inf
    flags += [ph.update(x) for x in xs[cut:]]
    assert flags == expected
    if xs:
        assert ph.mean == pytest.approx(river._x_mean.get())


def test_page_hinkley_detects_a_step() -> None:
    ph = PageHinkleyState(min_instances=5, delta=0.02, threshold=1.0)
    flags = [ph.update(x) for x in [0.1] * 10 + [0.7] * 10]
    assert flags.index(True) in (11, 12) and flags.count(True) == 1


DRIFT_SCORES = {
    0: [0.0] * 10 + [0.39] * 5 + [0.6] * 6,    # drifts on sub-threshold windows, then fires
    1: [0.0] * 10 + [0.39] * 5 + [0.1] * 6,    # drifts, stays low: the pending drift expires
    2: [0.1] * 21,
}


def drift_contexts() -> list[WindowContext]:
    out = []
    for w in range(21):
        slots = np.array([0, 1, 2])
        summary = WindowSummary(w * W, (w + 1) * W, slots, {}, {}, np.zeros(3, np.int64),
                                np.zeros(3, np.int64), np.full((3, 8), EMPTY))
        f = {k: np.zeros(3) for k in ("neardup_share", "completion_tokens_per_req",
                                      "cot_share", "reasoning_share")}
        f["requests"] = np.full(3, 20.0)
        f["extraction_score"] = np.array([DRIFT_SCORES[i][w] for i in range(3)])
        out.append(WindowContext(summary, f, ["a", "b", "c"], np.full(3, w),
                                 np.full(3, w * W), np.zeros((3, 3)), np.zeros((3, 3)), 5))
    return out


DRIFT_CONTEXTS = drift_contexts()


@SOME
@given(cut=st.integers(0, len(DRIFT_CONTEXTS)))
def test_behavior_drift_round_trip_with_pending_drifts(cut: int) -> None:
    ref = BehaviorDrift()
    ref_hits = [(w, h) for w, ctx in enumerate(DRIFT_CONTEXTS) for h in ref.detect(ctx)]
    assert [(w, h.row, h.score) for w, h in ref_hits] == [(15, 0, 0.6)]
    bd = BehaviorDrift()
    hits = [(w, h) for w, ctx in enumerate(DRIFT_CONTEXTS[:cut]) for h in bd.detect(ctx)]
    snap = bd.to_dict()
    assert non_plain(snap) == []
    if cut in (14, 15):
        assert snap["pending"] and snap["pending"][-1][0] == 1
    bd = BehaviorDrift()
    bd.load_dict(wire(snap))
    assert bd.to_dict() == snap
    hits += [(w + cut, h) for w, ctx in enumerate(DRIFT_CONTEXTS[cut:]) for h in bd.detect(ctx)]
    assert hits == ref_hits
    assert bd.to_dict() == ref.to_dict()


def contexts(seed: int, windows: int = 30, rows: int = 20,
             peers: PeerGroups | None = None) -> list[WindowContext]:
    """Random windows; with ``peers``, rows fall into its groups (group ids at random)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(windows):
        f = {k: rng.beta(1, 12, rows) for k in (
            "neardup_share", "cot_share", "reasoning_share", "share_429", "logprobs_share",
            "logit_bias_share", "new_net_share")}
        f["completion_tokens_per_req"] = rng.gamma(3, 80, rows)
        f["out_in_ratio"] = rng.gamma(2, 0.5, rows)
        f["distinct_keys"] = rng.integers(1, 3, rows).astype(float)
        f["requests"] = rng.integers(10, 200, rows).astype(float)
        if w > 15 and w % 3 == 0:                        # an odd one now and then
            for k in ("cot_share", "reasoning_share", "logprobs_share", "neardup_share"):
                f[k][0] = 1.0
            f["requests"][0] = 50.0
        out.append(WindowContext(
            summary=None,  # type: ignore[arg-type]  # PopulationOutlier reads features only
            features=f, account_ids=[f"a{i}" for i in range(rows)],
            windows_seen=np.full(rows, w), age_ms=np.full(rows, w * W),
            baseline_mean=np.zeros((rows, 3)), baseline_std=np.zeros((rows, 3)),
            warmup_windows=5,
            peer_group=None if peers is None else rng.integers(0, peers.n_groups, rows),
            peers=peers))
    return out


CONTEXTS = contexts(0)
PROBES = [dict(zip(("neardup_share", "cot_share", "reasoning_share", "output_heavy", "out_in",
                    "share_429", "logprobs_share", "logit_bias_share", "key_fanout",
                    "new_net_share"), np.random.default_rng(i).random(10).tolist(), strict=True))
          for i in range(20)]


@functools.cache
def population_reference() -> tuple[list[tuple[int, Hit]], dict[str, Any], list[float]]:
    ref = PopulationOutlier()
    hits = [(w, h) for w, ctx in enumerate(CONTEXTS) for h in ref.detect(ctx)]
    return hits, ref.to_dict(), [ref._model.score_one(p) for p in PROBES]


@FEW
@given(cut=st.integers(0, len(CONTEXTS)))
def test_population_outlier_round_trip(cut: int) -> None:
    ref_hits, ref_snap, ref_scores = population_reference()
    po = PopulationOutlier()
    hits = [(w, h) for w, ctx in enumerate(CONTEXTS[:cut]) for h in po.detect(ctx)]
    snap = po.to_dict()
    assert non_plain(snap) == []
    po = PopulationOutlier()
    po.load_dict(wire(snap))
    assert po.to_dict() == snap
    hits += [(w + cut, h) for w, ctx in enumerate(CONTEXTS[cut:]) for h in po.detect(ctx)]
    assert hits == ref_hits
    assert po.to_dict() == ref_snap
    assert [po._model.score_one(p) for p in PROBES] == ref_scores


def tiered() -> PeerGroups:
    pg = PeerGroups()
    for t in ("free", "pro"):
        pg.tier_id(t)
    return pg


PEER_CONTEXTS = contexts(1, peers=tiered())


@functools.cache
def peer_reference() -> tuple[list[tuple[int, Hit]], dict[str, Any]]:
    ref = PopulationOutlier(min_peer_windows=10)
    hits = [(w, h) for w, ctx in enumerate(PEER_CONTEXTS) for h in ref.detect(ctx)]
    return hits, ref.to_dict()


@FEW
@given(cut=st.integers(0, len(PEER_CONTEXTS)))
def test_population_outlier_peer_moments_round_trip(cut: int) -> None:
    ref_hits, ref_snap = peer_reference()
    assert len(ref_snap["peer_n"]) == 12 and min(ref_snap["peer_n"]) > 10
    po = PopulationOutlier(min_peer_windows=10)
    hits = [(w, h) for w, ctx in enumerate(PEER_CONTEXTS[:cut]) for h in po.detect(ctx)]
    snap = po.to_dict()
    assert non_plain(snap) == []
    po = PopulationOutlier(min_peer_windows=10)
    po.load_dict(wire(snap))
    assert po.to_dict() == snap
    hits += [(w + cut, h) for w, ctx in enumerate(PEER_CONTEXTS[cut:]) for h in po.detect(ctx)]
    assert hits == ref_hits
    assert po.to_dict() == ref_snap


def test_population_outlier_peer_moments_match_numpy() -> None:
    """Within the first 1/alpha windows of a group its moments are the plain mean and
    (population) variance of the group's scaled rows."""
    po = PopulationOutlier(min_requests=0)
    seen: dict[int, list[np.ndarray]] = {}
    for ctx in PEER_CONTEXTS[:3]:
        po.detect(ctx)
        x = scaled_features(ctx.features)
        assert ctx.peer_group is not None
        for row, g in enumerate(ctx.peer_group.tolist()):
            seen.setdefault(g, []).append(x[row])
    for g, xs in seen.items():
        assert po._peer_n[g] == len(xs) < 1 / po.pop_alpha
        np.testing.assert_allclose(po._peer_mean[g], np.mean(xs, axis=0), atol=1e-12)
        np.testing.assert_allclose(po._peer_var[g], np.var(xs, axis=0), atol=1e-12)


def test_population_outlier_sequence_fires_at_all() -> None:
    hits = [(w, h.row) for w, h in population_reference()[0]]
    assert hits and all(row == 0 and w > 15 and w % 3 == 0 for w, row in hits)


def incident_hits(seed: int, windows: int = 40) -> list[list[Finding]]:
    rng = np.random.default_rng(seed)
    out = []
    for w in range(windows):
        out.append([
            Finding.hit(rule, "warning", (acct,), float(rng.random()), 0.5, w * W, (w + 1) * W,
                        f"{rule} on {acct}", {"requests": int(rng.integers(1, 99)),
                                              "top": ["x", "y"], "v": {"a": 0.5}})
            for rule in ("logit_probe", "key_rotation") for acct in ("a", "b", "c")
            if rng.random() < 0.3])
    return out


def run_incidents(t: IncidentTracker, windows: list[list[Finding]], w0: int) -> list[Finding]:
    out = []
    for w, hits in enumerate(windows, start=w0):
        out += t.observe(hits) + t.resolve_due((w + 1) * W)
    return out


@SOME
@given(seed=st.integers(0, 10_000), cut=st.integers(0, 40), cooldown=st.integers(1, 4))
def test_incident_tracker_round_trip(seed: int, cut: int, cooldown: int) -> None:
    windows = incident_hits(seed)
    ref = IncidentTracker(W, cooldown)
    ref_out = run_incidents(ref, windows, 0)
    t = IncidentTracker(W, cooldown)
    out = run_incidents(t, windows[:cut], 0)
    snap = t.to_dict()
    assert non_plain(snap) == []
    t = IncidentTracker(W, cooldown)
    t.load_dict(wire(snap))
    assert t.to_dict() == snap
    out += run_incidents(t, windows[cut:], cut)
    assert out == ref_out
    assert t.to_dict() == ref.to_dict()
    # and the semantics: per (rule, account) firing and resolved alternate, ids pair up
    for key in {(f.rule, f.account_ids) for f in ref_out}:
        seq = [f for f in ref_out if (f.rule, f.account_ids) == key]
        assert [f.status for f in seq] == ["firing", "resolved"] * (len(seq) // 2) + (
            ["firing"] if len(seq) % 2 else [])
        assert all(a.alert_id == b.alert_id for a, b in zip(seq[::2], seq[1::2], strict=False))
