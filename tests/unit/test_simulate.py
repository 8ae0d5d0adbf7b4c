"""The scenario library (issue 3): determinism, labels, account records and the shape of
every campaign and confounder kind.

One module-scoped ``full`` scenario (6 hours, ~1.2M events, a few seconds to build) serves
the shape checks; smaller builds serve determinism and wire validity.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import msgspec
import numpy as np
import pytest

from streams.labels import CampaignLabel
from streams.records import AccountRecord, EventDecoder, RequestEvent
from streams.simulate import (
    HOUR,
    NEW_MODEL,
    SCENARIOS,
    Scenario,
    Window,
    build_scenario,
    encode_account_records,
    encode_events,
    hydra_cluster,
    key_rotation,
    logit_probe,
)

MIN = 60_000
CAMPAIGN_KINDS = ("solo_extraction", "hydra_cluster", "key_rotation", "low_and_slow",
                  "stolen_key", "logit_probe", "model_pivot")
CONFOUNDER_KINDS = ("launch_spike", "hourly_batch", "startup_ramp")


def digest(s: Scenario) -> str:
    h = hashlib.sha256()
    for key, ts, value in encode_events(s):
        h.update(key.encode())
        h.update(ts.to_bytes(8, "big"))
        h.update(value)
    for key, value in encode_account_records(s):
        h.update(key.encode())
        h.update(value)
    return h.hexdigest()


class View:
    """Per-account event indexes of a scenario, for the shape checks."""

    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.t = s.traffic
        self.by_account: dict[str, list[int]] = defaultdict(list)
        for i, a in enumerate(self.t.account):
            self.by_account[a].append(i)
        self.records = {r.account_id: r for r in s.account_records}
        self.labels = {c.kind: c for c in s.labels.campaigns}

    def idx(self, account: str) -> np.ndarray:
        return np.array(self.by_account.get(account, []), dtype=np.int64)

    def label(self, kind: str) -> CampaignLabel:
        return self.labels[kind]

    def only(self, kind: str) -> tuple[CampaignLabel, np.ndarray]:
        c = self.label(kind)
        assert len(c.accounts) == 1
        return c, self.idx(c.accounts[0])


@pytest.fixture(scope="module")
def full() -> Iterator[View]:
    started = time.perf_counter()
    s = build_scenario("full", seed=1)
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"full scenario took {elapsed:.1f} s to build"
    yield View(s)


# -- the library -------------------------------------------------------------------------------
def test_scenario_names() -> None:
    assert {"demo", "benign", "full", *CAMPAIGN_KINDS} <= set(SCENARIOS)
    assert SCENARIOS["full"].duration_s == 21_600
    assert SCENARIOS["demo"].duration_s == 1800
    for kind in CAMPAIGN_KINDS:
        assert [type(a).__name__ for a in SCENARIOS[kind].actors] == ["function"]


def test_unknown_scenario_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        build_scenario("nope")


def test_demo_keeps_its_shape() -> None:
    s = build_scenario("demo", seed=11, duration_s=1200, accounts=120, total_rate=40.0)
    assert s.labels.end_ts - s.labels.start_ts == 1_200_000
    assert [c.kind for c in s.labels.campaigns] == ["solo_extraction"]
    solo = s.labels.campaigns[0]
    assert solo.accounts == ["acct-x-solo"]
    assert solo.start_ts == s.labels.start_ts + 400_000
    assert len(s.labels.benign_accounts) == 120
    assert s.labels.biggest_benign_account == "acct-giant"


@pytest.mark.parametrize("kind", CAMPAIGN_KINDS)
def test_each_campaign_scenario_has_its_campaign_on_the_background(kind: str) -> None:
    s = build_scenario(kind, seed=3, duration_s=SCENARIOS[kind].duration_s, accounts=30,
                       total_rate=5.0)
    assert [c.kind for c in s.labels.campaigns] == [kind]
    assert len(s.labels.benign_accounts) == 30
    c = s.labels.campaigns[0]
    assert s.labels.start_ts + 30 * MIN <= c.start_ts < c.end_ts <= s.labels.end_ts
    counts = Counter(s.traffic.account)
    assert all(counts[a] > 0 for a in c.accounts)


def test_full_scenario_size_and_labels(full: View) -> None:
    s = full.s
    assert s.labels.end_ts - s.labels.start_ts == 21_600_000
    assert 500_000 <= len(s.traffic) <= 1_500_000
    assert s.labels.events == len(s.traffic)
    kinds = Counter(c.kind for c in s.labels.campaigns)
    assert set(kinds) == set(CAMPAIGN_KINDS) | set(CONFOUNDER_KINDS)
    assert all(n == 1 for n in kinds.values())
    assert len({c.name for c in s.labels.campaigns}) == len(s.labels.campaigns)
    assert {c.kind for c in s.labels.confounders} == set(CONFOUNDER_KINDS)
    assert {c.kind for c in s.labels.attacks} == set(CAMPAIGN_KINDS)
    # starts spread over the scenario, each after >= 30 min of history
    starts = sorted(c.start_ts for c in s.labels.attacks)
    assert starts[0] >= s.labels.start_ts + 30 * MIN
    assert starts[-1] - starts[0] >= 2 * HOUR
    assert np.all(np.diff(s.traffic.ts) >= 0)


# -- determinism -----------------------------------------------------------------------------
def test_same_seed_same_events_and_records() -> None:
    a = build_scenario("full", seed=5, duration_s=1800, accounts=40, total_rate=8.0)
    b = build_scenario("full", seed=5, duration_s=1800, accounts=40, total_rate=8.0)
    assert digest(a) == digest(b)
    assert msgspec.json.encode(a.labels) == msgspec.json.encode(b.labels)


def test_different_seed_different_events() -> None:
    a = build_scenario("full", seed=5, duration_s=1800, accounts=40, total_rate=8.0)
    c = build_scenario("full", seed=6, duration_s=1800, accounts=40, total_rate=8.0)
    assert digest(a) != digest(c)
    assert a.traffic.ts.tolist() != c.traffic.ts.tolist()


# -- labels ---------------------------------------------------------------------------------------
def test_labels_are_consistent(full: View) -> None:
    s = full.s
    benign = set(s.labels.benign_accounts)
    assert len(benign) == len(s.labels.benign_accounts)
    attackers = {a for c in s.labels.attacks for a in c.accounts}
    assert attackers and not attackers & benign
    for c in s.labels.confounders:
        assert set(c.accounts) <= benign
    for c in s.labels.campaigns:
        assert s.labels.start_ts <= c.start_ts < c.end_ts <= s.labels.end_ts
        for a in c.accounts:
            assert full.by_account.get(a), f"{c.name}: {a} has no events"
    # every account in the events is labelled either way (a tiny tenant may stay silent)
    assert set(full.by_account) <= benign | attackers
    assert len(set(full.by_account) & benign) >= len(benign) - 5
    counts = {a: len(v) for a, v in full.by_account.items()}
    assert s.labels.biggest_benign_account == max(benign, key=lambda a: counts.get(a, 0))


def test_every_account_has_one_record(full: View) -> None:
    s = full.s
    ids = [r.account_id for r in s.account_records]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(s.labels.benign_accounts) | {a for c in s.labels.attacks for a in c.accounts}
    for r in s.account_records:
        first = full.idx(r.account_id)
        assert r.created_ts is not None
        assert r.created_ts < (full.t.ts[first[0]] if len(first) else s.labels.end_ts)
        assert r.tier in {"free", "pro", "enterprise"}
        assert r.payment_fp and r.country and r.verified is not None


def test_account_records_encode_to_the_contract(full: View) -> None:
    decoder = msgspec.json.Decoder(AccountRecord)
    items = list(encode_account_records(full.s))
    assert len(items) == len(full.s.account_records)
    for key, value in items:
        rec = decoder.decode(value)
        assert rec.account_id == key


def test_benign_tenants_are_established_and_campaign_accounts_fresh(full: View) -> None:
    s = full.s
    start = s.labels.start_ts
    benign = [full.records[a] for a in s.labels.benign_accounts]
    giant = full.records["acct-giant"]
    assert giant.tier == "enterprise" and start - giant.created_ts > 100 * 24 * HOUR
    old = [r for r in benign if start - (r.created_ts or 0) >= 3 * 24 * HOUR]
    assert len(old) >= len(benign) - 1          # all but the new startup
    assert len({r.payment_fp for r in benign}) == len(benign)
    for kind in ("solo_extraction", "hydra_cluster", "key_rotation", "logit_probe", "model_pivot"):
        c = full.label(kind)
        for a in c.accounts:
            age = c.start_ts - (full.records[a].created_ts or 0)
            assert 0 < age <= 2 * 24 * HOUR, f"{kind}: {a} is {age / HOUR:.1f} h old"
    for kind in ("low_and_slow", "stolen_key"):
        c = full.label(kind)
        assert start - (full.records[c.accounts[0]].created_ts or 0) >= 14 * 24 * HOUR


# -- campaign shapes ---------------------------------------------------------------------------
def test_hydra_cluster_shape(full: View) -> None:
    c = full.label("hydra_cluster")
    t = full.t
    assert len(c.accounts) >= 120
    firsts = [t.ts[full.idx(a)[0]] for a in c.accounts]
    assert max(firsts) - min(firsts) <= 60_000
    assert min(firsts) >= c.start_ts
    pays = Counter(full.records[a].payment_fp for a in c.accounts)
    assert len(pays) == 3 and min(pays.values()) >= 30
    idx = np.concatenate([full.idx(a) for a in c.accounts])
    assert len({t.ip[i].rsplit(".", 1)[0] for i in idx}) == 2
    assert len(set(t.asn[idx].tolist())) == 1
    assert len({t.ua[i] for i in idx}) == 1
    assert t.cot[idx].mean() > 0.5
    assert np.median(t.completion_tokens[idx]) > 1000
    assert np.mean(t.reasoning_tokens[idx] / t.completion_tokens[idx]) > 0.3
    minutes = (c.end_ts - c.start_ts) / MIN
    for a in c.accounts:
        per_min = len(full.idx(a)) / minutes
        assert 1 <= per_min <= 8, f"{a}: {per_min:.1f} requests/min"


def test_hydra_actor_alone() -> None:
    rng = np.random.default_rng(0)
    w = Window(0 + 1_700_000_000_000, 1_700_000_000_000 + HOUR)
    traffic, label, records = hydra_cluster(rng, w, n_accounts=130)
    assert len(label.accounts) == 130 == len(records)
    assert set(traffic.account) == set(label.accounts)
    assert len({r.payment_fp for r in records}) == 3


def test_key_rotation_shape(full: View) -> None:
    c, idx = full.only("key_rotation")
    t = full.t
    keys = [t.key[i] for i in idx]
    assert len(set(keys)) >= 30
    share_429 = float(np.mean(t.status[idx] == 429))
    assert 0.10 <= share_429 <= 0.30
    # the key changes right after every 429 (and only then)
    for j in np.flatnonzero(t.status[idx][:-1] == 429).tolist():
        assert keys[j + 1] != keys[j]
    switches = sum(1 for j in range(len(keys) - 1) if keys[j + 1] != keys[j])
    assert switches == int(np.sum(t.status[idx][:-1] == 429))


def test_key_rotation_actor_share_bounds() -> None:
    w = Window(1_700_000_000_000, 1_700_000_000_000 + HOUR)
    for seed in range(4):
        traffic, _, _ = key_rotation(np.random.default_rng(seed), w)
        assert 0.10 <= float(np.mean(traffic.status == 429)) <= 0.30
        assert len(set(traffic.key)) >= 30


def test_logit_probe_shape(full: View) -> None:
    c, idx = full.only("logit_probe")
    t = full.t
    assert t.completion_tokens[idx].min() >= 1 and t.completion_tokens[idx].max() <= 5
    assert 0.85 <= t.logprobs[idx].mean() <= 0.95
    assert 0.6 <= t.logit_bias[idx].mean() <= 0.8
    rate = len(idx) / ((c.end_ts - c.start_ts) / 1000)
    assert 0.8 <= rate <= 3.2


def test_logit_probe_actor_alone() -> None:
    w = Window(1_700_000_000_000, 1_700_000_000_000 + 10 * MIN)
    traffic, label, records = logit_probe(np.random.default_rng(1), w)
    assert label.kind == "logit_probe" and records[0].account_id == label.accounts[0]
    assert traffic.completion_tokens.max() <= 5


def test_model_pivot_shape(full: View) -> None:
    c, idx = full.only("model_pivot")
    t = full.t
    new = np.array([m == NEW_MODEL for m in t.model])
    assert t.ts[new].min() >= c.start_ts                       # never seen before the release
    pre = idx[t.ts[idx] < c.start_ts]
    assert len(pre) > 0 and not new[pre].any()                 # first on the existing models
    assert t.ts[idx[0]] <= c.start_ts - 30 * MIN
    late = idx[(t.ts[idx] >= c.start_ts + 50 * MIN) & (t.ts[idx] < c.start_ts + 70 * MIN)]
    assert new[late].mean() >= 0.7                              # most of it within ~1 hour
    camp = idx[t.ts[idx] >= c.start_ts]
    assert np.median(t.completion_tokens[camp]) > 1000
    assert np.median(t.completion_tokens[camp] / t.prompt_tokens[camp]) > 3


def test_stolen_key_shape(full: View) -> None:
    c, idx = full.only("stolen_key")
    t = full.t
    before = idx[t.ts[idx] < c.start_ts]
    during = idx[(t.ts[idx] >= c.start_ts) & (t.ts[idx] < c.end_ts)]
    assert len(before) > 100
    rate_before = len(before) / (c.start_ts - full.s.labels.start_ts)
    rate_during = len(during) / (c.end_ts - c.start_ts)
    assert 5 <= rate_during / rate_before <= 12
    nets_before = {t.ip[i].rsplit(".", 1)[0] for i in before}
    uas_before = {t.ua[i] for i in before}
    asns_before = set(t.asn[before].tolist())
    fresh = [i for i in during.tolist() if t.ip[i].rsplit(".", 1)[0] not in nets_before]
    assert len(fresh) >= 0.75 * len(during)
    assert len({t.ip[i].rsplit(".", 1)[0] for i in fresh}) >= 2
    assert all(t.ua[i] not in uas_before for i in fresh)
    assert not set(t.asn[fresh].tolist()) & asns_before
    assert len({t.key[i] for i in fresh}) == 1                  # one of its keys
    assert {t.key[i] for i in fresh} <= {t.key[i] for i in before}
    # its normal traffic goes on from its usual networks
    assert any(t.ip[i].rsplit(".", 1)[0] in nets_before for i in during.tolist())


def test_low_and_slow_shape(full: View) -> None:
    c, idx = full.only("low_and_slow")
    t = full.t

    def shares(lo: int, hi: int) -> tuple[int, float, float]:
        sel = idx[(t.ts[idx] >= lo) & (t.ts[idx] < hi)]
        return len(sel), float(t.cot[sel].mean()), float(np.median(t.completion_tokens[sel]))

    n0, cot0, _ = shares(full.s.labels.start_ts, c.start_ts)
    n1, cot1, _ = shares(c.start_ts + 2 * HOUR, c.end_ts)
    assert n0 > 100 and cot0 < 0.1                               # weeks-old honest history
    assert cot1 > 0.25 and n1 / (c.end_ts - c.start_ts - 2 * HOUR) > 1.5 * n0 / (
        c.start_ts - full.s.labels.start_ts)
    first_half_hour = shares(c.start_ts, c.start_ts + 30 * MIN)[1]
    assert first_half_hour < cot1                                # a gradual drift, not a jump


def test_solo_extraction_shape(full: View) -> None:
    c, idx = full.only("solo_extraction")
    t = full.t
    assert t.ts[idx].min() >= c.start_ts
    assert t.cot[idx].mean() > 0.5 and np.median(t.completion_tokens[idx]) > 1000


# -- confounders ---------------------------------------------------------------------------------
def test_hourly_batch_runs_from_the_start(full: View) -> None:
    c, idx = full.only("hourly_batch")
    t = full.t
    assert c.confounder and c.start_ts == full.s.labels.start_ts
    batch = idx[np.array([t.key[i].endswith("-batch") for i in idx])]
    hours = (t.ts[batch] - full.s.labels.start_ts) // HOUR
    per_hour = np.bincount(hours, minlength=6)
    assert np.all(per_hour[:6] > 500)                           # a burst every hour, hour 0 too
    assert t.ts[batch].min() < full.s.labels.start_ts + 15 * MIN
    assert not t.cot[batch].any()
    assert t.completion_tokens[batch].max() < 1000
    fps = Counter(int(x) >> 40 for x in t.fp[batch].tolist())   # few templates
    assert len(fps) < len(batch) / 10


def test_launch_spike_is_a_big_customer_tenfold(full: View) -> None:
    c, idx = full.only("launch_spike")
    t = full.t
    account = c.accounts[0]
    assert c.confounder and full.records[account].tier == "enterprise"
    before = idx[(t.ts[idx] >= c.start_ts - HOUR) & (t.ts[idx] < c.start_ts)]
    during = idx[(t.ts[idx] >= c.start_ts) & (t.ts[idx] < c.end_ts)]
    ratio = len(during) / len(before) / ((c.end_ts - c.start_ts) / HOUR)
    assert 6 <= ratio <= 14
    nets = {t.ip[i].rsplit(".", 1)[0] for i in before}
    assert all(t.ip[i].rsplit(".", 1)[0] in nets for i in during.tolist())
    assert {t.key[i] for i in during} <= {t.key[i] for i in idx[t.ts[idx] < c.start_ts]}
    assert len({int(x) for x in t.fp[during].tolist()}) > 0.8 * len(during)   # diverse


def test_startup_ramps_up(full: View) -> None:
    c, idx = full.only("startup_ramp")
    t = full.t
    assert c.confounder
    age = c.start_ts - (full.records[c.accounts[0]].created_ts or 0)
    assert age <= 5 * 24 * HOUR
    assert t.ts[idx].min() >= c.start_ts
    first = np.sum(t.ts[idx] < c.start_ts + 30 * MIN)
    last = np.sum(t.ts[idx] >= c.end_ts - 30 * MIN)
    assert last > 5 * max(first, 1) and last > 1000


# -- background ---------------------------------------------------------------------------------
def test_background_is_heavy_tailed_and_bursty() -> None:
    s = build_scenario("benign", seed=2)
    counts = Counter(s.traffic.account)
    benign_total = sum(counts[a] for a in s.labels.benign_accounts)
    biggest = s.labels.biggest_benign_account
    assert biggest is not None
    assert counts[biggest] >= 0.4 * benign_total
    sizes = sorted(counts.values())
    assert sizes[len(sizes) // 2] * 100 < counts[biggest]       # tenants of very different sizes
    cvs = []
    accounts = np.array(s.traffic.account)
    for a, _ in counts.most_common(20):
        ts = s.traffic.ts[accounts == a]
        gaps = np.diff(ts).astype(float)
        cvs.append(gaps.std() / gaps.mean())
    assert max(cvs) > 2 and np.median(cvs) > 1
    tokens = s.traffic.completion_tokens
    assert tokens.min() < 50 and tokens.max() > 10_000


def test_background_follows_a_day_night_cycle() -> None:
    # from midnight to 6 a.m. UTC the cycle climbs from its trough
    s = build_scenario("benign", seed=4, duration_s=21_600, accounts=40, total_rate=10.0)
    hours = (s.traffic.ts - s.labels.start_ts) // HOUR
    per_hour = np.bincount(hours, minlength=6)
    assert per_hour[5] > per_hour[0]


# -- wire validity ---------------------------------------------------------------------------------
def test_every_event_passes_the_decoder() -> None:
    s = build_scenario("full", seed=9, duration_s=2400, accounts=40, total_rate=6.0)
    d = EventDecoder()
    ids = set()
    n = 0
    for key, ts, value in encode_events(s):
        ev = d.decode(value)
        assert isinstance(ev, RequestEvent), ev
        assert ev.account_id == key and ev.ts == ts
        ids.add(ev.event_id)
        n += 1
    assert n == len(s.traffic) == len(ids)
