"""The ``wild`` scenario: randomised test traffic for checking that detection generalises.

Written independently of the detectors, from what public reports say real extraction
campaigns and honest customers do. Every seed draws every parameter of every actor
(rates, start times, durations, team sizes, template counts, network shapes, CoT share,
token lengths) from wide ranges, and every seed contains every kind below, each labelled
once (``CampaignLabel.name == kind``). Account ids (``acct-<hex>``) and key ids
(``sk-<hex>``) are neutral for attackers and honest tenants alike.

Honest background (:func:`background`): about 250 tenants drawn from Alibaba's ServeGen
statistics (:mod:`streams.scenarios.servegen`: per-tenant rates, burstiness, day profile,
token lengths), each with its own keys (1-20 by size), /24 networks and ASNs (the biggest
on several cloud ASNs), user agents, models, prompt fingerprints (mostly diverse; some
tenants run templated batch work), 1-5 % chain-of-thought asks, rare logprobs and a
1-3 % share of 429s.

Attacks (``confounder=False``, :mod:`streams.scenarios.wild_attacks`):
``reasoning_harvest``, ``slow_swarm``, ``hydra_sparse``, ``proxy_reseller``,
``sequential_handover``, ``model_pivot``, ``low_and_slow``, ``stolen_key``,
``logprob_probe``, ``reasoning_coercion``.

Confounders (honest look-alikes, ``confounder=True``,
:mod:`streams.scenarios.wild_confounders`): ``benchmark_suite``, ``mobile_app``,
``ci_jobs``, ``early_adopters``, ``launch_spike``, ``startup_ramp``, ``research_lab``.

Each actor has its own random stream (``default_rng([seed, actor id])``), so adding an
actor leaves the others unchanged. ``NEW_MODEL`` is released once per seed, at a random
time; ``model_pivot`` and ``early_adopters`` share it.

>>> s = build_wild(1, duration_s=1800, accounts=30)
>>> sorted(c.kind for c in s.labels.campaigns) == sorted(ATTACK_KINDS + CONFOUNDER_KINDS)
True
>>> bool((s.traffic.ts[1:] >= s.traffic.ts[:-1]).all())
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streams.labels import CampaignLabel
from streams.records import AccountRecord
from streams.scenarios.servegen import (
    TenantShape,
    arrivals,
    draw_tenants,
    load_tenant_shapes,
    token_lengths,
)
from streams.simulate import (
    DAY,
    MINUTE,
    Cast,
    Scenario,
    Traffic,
    Window,
    _fps_random,
    _fps_templated,
    _ips,
    _payment_fp,
    assemble,
)

__all__ = ["ATTACK_KINDS", "CONFOUNDER_KINDS", "Ctx", "Profile", "WildTenant", "background",
           "build_wild", "honest_events", "log_uniforms"]

ATTACK_KINDS = ["reasoning_harvest", "slow_swarm", "hydra_sparse", "proxy_reseller",
                "sequential_handover", "model_pivot", "low_and_slow", "stolen_key",
                "logprob_probe", "reasoning_coercion"]
CONFOUNDER_KINDS = ["benchmark_suite", "mobile_app", "ci_jobs", "early_adopters",
                    "launch_spike", "startup_ramp", "research_lab"]

DEFAULT_START_TS = 1_767_225_600_000

# Big clouds honest tenants run on (AWS, GCP, Azure, Oracle, Alibaba, Cloudflare).
CLOUD_ASNS = [16509, 14618, 15169, 396982, 8075, 31898, 45102, 13335]
# Cheap hosting / VPS / proxy-friendly networks (DigitalOcean, Hetzner, OVH, M247, Linode,
# Vultr, Contabo, Leaseweb) plus AWS.
HOSTING_ASNS = [14061, 24940, 16276, 9009, 63949, 20473, 51167, 60781, 16509]
# Consumer ISPs / mobile carriers (Comcast, Charter, AT&T, Verizon, T-Mobile, DTAG, BT,
# Orange, Jio, Airtel, Vivo, Claro, SoftBank, KT, Rogers, Telstra, Vodafone, Viettel).
RESIDENTIAL_ASNS = [7922, 20115, 7018, 701, 21928, 3320, 2856, 3215, 55836, 45609, 26599,
                    28573, 17676, 4766, 812, 1221, 3209, 7552, 6830, 12322]
SDK_UAS = ["python-requests/2.32", "openai-python/1.40", "openai-python/1.51", "node-fetch/3.3",
           "curl/8.5", "Go-http-client/2.0", "acme-sdk/4.1", "langchain/0.2", "java-http/21",
           "openai-node/4.56", "python-httpx/0.27", "ruby-openai/7.1", "dotnet-openai/2.0"]
SCRIPT_UAS = ["python-httpx/0.27", "aiohttp/3.9", "okhttp/4.12", "axios/1.7",
              "python-requests/2.31", "Go-http-client/1.1", "curl/8.4", "undici/6.19"]
OLD_MODELS = ["atlas-large", "atlas-small", "atlas-reason"]


# -- shared helpers ------------------------------------------------------------------------
def key_id(rng: np.random.Generator) -> str:
    return f"sk-{int(rng.integers(0, 2**48)):012x}"


def subnet(rng: np.random.Generator) -> str:
    return f"{rng.integers(11, 223)}.{rng.integers(0, 256)}.{rng.integers(0, 256)}"


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def log_uniforms(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))


def long_tokens(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` completion lengths, log-uniform on ``[lo, hi]``."""
    return np.rint(log_uniforms(rng, lo, hi, n)).astype(np.int64)


def renewal(rng: np.random.Generator, rate_per_s: float, start_ts: int, end_ts: int, cv: float) -> np.ndarray:
    """Gamma-renewal arrival times (ms) at a flat rate with the given CV of gaps."""
    if rate_per_s <= 0 or end_ts <= start_ts:
        return np.zeros(0, np.int64)
    k = 1.0 / (cv * cv)
    horizon = (end_ts - start_ts) / 1000
    n = int(rate_per_s * horizon * 1.2) + 32
    t = np.cumsum(rng.gamma(k, 1.0 / (rate_per_s * k), size=n)) - rng.uniform(0, 1 / rate_per_s)
    while t[-1] < horizon:
        t = np.concatenate([t, t[-1] + np.cumsum(rng.gamma(k, 1.0 / (rate_per_s * k), size=n))])
    t = t[(t >= 0) & (t < horizon)]
    return (start_ts + t * 1000).astype(np.int64)


def first_at(start_ts: int, ts: np.ndarray) -> np.ndarray:
    """``ts`` with a first event at ``start_ts`` (so every labelled account shows up)."""
    return np.concatenate([[start_ts], ts[ts > start_ts]]).astype(np.int64)


def ramp(ts: np.ndarray, start_ts: float, ramp_ms: float) -> np.ndarray:
    return np.clip((ts - start_ts) / max(ramp_ms, 1.0), 0.0, 1.0)


def status(rng: np.random.Generator, n: int, p429: float, p500: float = 0.003) -> np.ndarray:
    u = rng.random(n)
    return np.where(u < p429, 429, np.where(u < p429 + p500, 500, 200)).astype(np.int64)


def record(rng: np.random.Generator, account: str, created_ts: int, tier: str, verified: bool,
           payment_fp: str | None = "new", country: str | None = None) -> AccountRecord:
    """An account record; ``payment_fp="new"`` draws a payment method of its own."""
    countries = ["US", "US", "US", "DE", "GB", "IN", "BR", "JP", "FR", "CA", "SG", "KR", "NL", "VN", "ID"]
    return AccountRecord(account_id=account, created_ts=int(created_ts), tier=tier,
                         payment_fp=_payment_fp(rng) if payment_fp == "new" else payment_fp,
                         country=country or str(rng.choice(countries)), verified=verified)


def label(kind: str, accounts: list[str], start_ts: int, end_ts: int, confounder: bool) -> CampaignLabel:
    return CampaignLabel(name=kind, kind=kind, accounts=list(accounts), start_ts=int(start_ts),
                         end_ts=int(end_ts), confounder=confounder)


# -- honest tenants --------------------------------------------------------------------------
@dataclass
class Profile:
    """What stays the same across a tenant's honest traffic."""

    account: str
    shape: TenantShape
    keys: list[str]
    key_p: np.ndarray
    nets: list[str]
    net_asn: np.ndarray
    net_p: np.ndarray
    uas: list[str]
    models: list[str]
    model_p: np.ndarray
    templated: float = 0.0
    templates: np.ndarray = field(default_factory=lambda: np.zeros(1, np.uint64))
    cot: float = 0.02
    logprobs: float = 0.002
    p429: float = 0.02


def new_profile(rng: np.random.Generator, account: str, shape: TenantShape, n_keys: int,
                n_nets: int, asns: list[int], uas: list[str] | None = None) -> Profile:
    """A profile on ``n_nets`` /24s spread over ``asns``; Zipf-weighted key and net use."""
    keys = [key_id(rng) for _ in range(n_keys)]
    nets = [subnet(rng) for _ in range(n_nets)]
    net_asn = np.array([asns[i % len(asns)] for i in range(n_nets)], np.int64)

    def zipf(m: int) -> np.ndarray:
        w = 1.0 / np.arange(1, m + 1) ** rng.uniform(0.3, 1.5)
        return w / w.sum()

    if uas is None:
        uas = [str(u) for u in rng.choice(SDK_UAS, size=int(rng.integers(1, 4)), replace=False)]
    if shape.kind == "reasoning":
        models, model_p = ["atlas-reason"], np.ones(1)
    else:
        models = list(OLD_MODELS)
        model_p = rng.dirichlet([2.0, 2.0, 0.4])
    templated = float(rng.uniform(0.3, 0.9)) if rng.random() < 0.2 else 0.0
    return Profile(account, shape, keys, zipf(n_keys), nets, net_asn, zipf(n_nets), uas, models,
                   model_p, templated, _fps_random(rng, int(rng.integers(1, 6))),
                   cot=float(rng.uniform(0.01, 0.05)), logprobs=float(rng.choice([0.0, 0.0, 0.002, 0.01])),
                   p429=float(rng.uniform(0.01, 0.03)))


def honest_events(rng: np.random.Generator, p: Profile, ts: np.ndarray) -> Traffic:
    """Honest requests of profile ``p`` at times ``ts`` (token lengths from its ServeGen shape)."""
    n = len(ts)
    prompt, completion, reasoning = token_lengths(rng, p.shape, n)
    model = np.asarray(p.models)[rng.choice(len(p.models), size=n, p=p.model_p)]
    is_reason = model == "atlas-reason"
    if p.shape.kind != "reasoning":
        reasoning = np.where(is_reason, (completion * rng.uniform(0.1, 0.5, n)).astype(np.int64), 0)
    net_idx = rng.choice(len(p.nets), size=n, p=p.net_p)
    tpl = rng.random(n) < p.templated
    fp = np.where(tpl, _fps_templated(rng, n, p.templates), _fps_random(rng, n))
    return Traffic(
        ts=np.asarray(ts, np.int64), account=[p.account] * n,
        key=[p.keys[i] for i in rng.choice(len(p.keys), size=n, p=p.key_p).tolist()],
        ip=_ips(rng, p.nets, n, net_idx), asn=p.net_asn[net_idx],
        ua=[p.uas[i] for i in rng.integers(0, len(p.uas), size=n).tolist()], model=model.tolist(),
        prompt_tokens=np.maximum(prompt, 1), completion_tokens=completion, reasoning_tokens=reasoning,
        status=status(rng, n, p.p429), fp=fp.astype(np.uint64), cot=rng.random(n) < p.cot,
        logprobs=rng.random(n) < p.logprobs, logit_bias=rng.random(n) < p.logprobs / 5)


@dataclass
class WildTenant:
    account: str
    rate_per_s: float
    tier: str
    profile: Profile
    traffic: Traffic


def _tier(share: float) -> str:
    return "enterprise" if share >= 0.005 else "pro" if share >= 0.0003 else "free"


def background(rng: np.random.Generator, n: int, w: Window, total_rate: float) -> list[WildTenant]:
    """``n`` honest ServeGen tenants (biggest first) whose mean rates add up to ``total_rate``."""
    out = []
    for rank, shape in enumerate(draw_tenants(rng, n, total_rate)):
        account = f"acct-{int(rng.integers(0, 2**48)):012x}"
        per_hour = shape.mean_rate_per_s * 3600
        n_keys = int(np.clip(round(np.log10(per_hour + 1) * rng.uniform(1.5, 4.0)), 1, 20))
        if rank < 5:
            asns = [int(a) for a in rng.choice(CLOUD_ASNS, size=int(rng.integers(2, 5)), replace=False)]
            n_nets = int(rng.integers(4, 13))
        else:
            own = int(rng.integers(1000, 65000))
            asns = [int(rng.choice(CLOUD_ASNS)) if rng.random() < 0.65 else own]
            if rng.random() < 0.25:
                asns.append(int(rng.choice(CLOUD_ASNS)))
            n_nets = int(rng.integers(1, 4))
        prof = new_profile(rng, account, shape, n_keys, n_nets, asns)
        traffic = honest_events(rng, prof, arrivals(rng, shape, w.start_ts, w.end_ts))
        out.append(WildTenant(account, shape.mean_rate_per_s, _tier(shape.mean_rate_per_s / total_rate),
                              prof, traffic))
    return out


def background_records(rng: np.random.Generator, tenants: list[WildTenant], start_ts: int) -> list[AccountRecord]:
    """Honest tenants: created days to years ago, tier by size, verified mostly for paid tiers."""
    days = {"enterprise": (120, 1800), "pro": (15, 1000), "free": (2, 800)}
    verified_p = {"enterprise": 0.97, "pro": 0.85, "free": 0.4}
    return [record(rng, t.account, start_ts - int(log_uniform(rng, *days[t.tier]) * DAY), t.tier,
                   bool(rng.random() < verified_p[t.tier])) for t in tenants]


def shape_for(rng: np.random.Generator, rate_per_s: float, kind: str = "language") -> TenantShape:
    """A random real ServeGen tenant shape (one active every hour) rescaled to ``rate_per_s`` (for dedicated honest accounts)."""
    shapes = [s for s in load_tenant_shapes(kind) if min(s.hourly_rate_per_s) > 0]   # active all day
    s = shapes[int(rng.integers(0, len(shapes)))]
    return s.scaled(rate_per_s / s.mean_rate_per_s)


# -- actors' world -----------------------------------------------------------------------------
@dataclass
class Ctx:
    """What an actor may use: its own random stream, the scenario window, the new model's
    release time and the honest background (read-only except for ``early_adopters``)."""

    rng: np.random.Generator
    w: Window
    release_ts: int
    tenants: list[WildTenant]

    def account(self) -> str:
        return f"acct-{int(self.rng.integers(0, 2**48)):012x}"

    def slot(self, lo_s: float, hi_s: float, earliest_ts: int | None = None) -> Window:
        """A window of ``lo_s``-``hi_s`` seconds placed at random after the warm-up (the
        first 30 minutes, or an eighth of a short scenario), shortened to fit."""
        d = self.w.end_ts - self.w.start_ts
        first = self.w.start_ts + min(30 * MINUTE, d // 8) if earliest_ts is None else earliest_ts
        avail = max(self.w.end_ts - first, 1)
        dur = min(int(self.rng.uniform(lo_s, hi_s) * 1000), int(avail * 0.9))
        start = first + int(self.rng.uniform(0, avail - dur))
        return Window(start, start + max(dur, 1))


Actor = Callable[[Ctx], Cast]


def _actors() -> dict[str, Actor]:
    from streams.scenarios import wild_attacks, wild_confounders
    return {**{k: getattr(wild_attacks, k) for k in ATTACK_KINDS},
            **{k: getattr(wild_confounders, k) for k in CONFOUNDER_KINDS}}


def build_wild(seed: int = 7, start_ts: int = DEFAULT_START_TS, duration_s: int | None = None,
               accounts: int | None = None, total_rate: float | None = None) -> Scenario:
    """The ``wild`` scenario for ``seed`` (defaults: 4 hours, 250 tenants, 60 honest requests/s)."""
    duration_s = 14_400 if duration_s is None else duration_s
    accounts = 250 if accounts is None else accounts
    total_rate = 60.0 if total_rate is None else total_rate
    if duration_s <= 0 or accounts < 20 or total_rate <= 0:
        raise ValueError("wild: duration must be positive, accounts at least 20, rate positive")
    w = Window(start_ts, start_ts + duration_s * 1000)
    tenants = background(np.random.default_rng([seed, 0]), accounts, w, total_rate)
    d = w.end_ts - w.start_ts
    release_ts = w.start_ts + int(np.random.default_rng([seed, 1]).uniform(0.3, 0.7) * d)
    casts = []
    for k, (_kind, actor) in enumerate(_actors().items()):
        casts.append(actor(Ctx(np.random.default_rng([seed, 100 + k]), w, release_ts, tenants)))

    records = background_records(np.random.default_rng([seed, 2]), tenants, w.start_ts)
    return assemble("wild", seed, w, [t.traffic for t in tenants], [t.account for t in tenants],
                    casts, records)

