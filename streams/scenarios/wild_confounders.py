"""Confounder actors of the ``wild`` scenario (see :mod:`streams.scenarios.wild`): honest
traffic that looks odd and must not page, one function per kind, each ``Ctx -> Cast`` with
a label ``confounder=True``. Ranges are in the docstrings.
"""

from __future__ import annotations

import numpy as np

from streams.records import AccountRecord
from streams.scenarios.servegen import arrivals
from streams.scenarios.wild import (
    CLOUD_ASNS,
    OLD_MODELS,
    RESIDENTIAL_ASNS,
    Ctx,
    Profile,
    first_at,
    honest_events,
    key_id,
    label,
    log_uniform,
    long_tokens,
    new_profile,
    ramp,
    record,
    renewal,
    shape_for,
    status,
    subnet,
)
from streams.simulate import (
    DAY,
    MINUTE,
    NEW_MODEL,
    Cast,
    Traffic,
    _concat,
    _fps_random,
    _fps_templated,
    _ips,
    _make,
)

__all__ = ["benchmark_suite", "ci_jobs", "early_adopters", "launch_spike", "mobile_app", "research_lab",
           "startup_ramp"]

PHONE_UAS = ["okhttp/4.12.0", "okhttp/4.9.3", "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A)",
             "Dalvik/2.1.0 (Linux; U; Android 13; SM-S918B Build/TP1A)", "Dalvik/2.1.0 (Linux; U; Android 12; M2101K6G)",
             "ChatPal/5.2.1 CFNetwork/1494.0.7 Darwin/23.4.0", "ChatPal/5.2.0 CFNetwork/1410.0.3 Darwin/22.6.0",
             "ChatPal/5.1.9 (iPhone; iOS 17.5; Scale/3.00)", "ChatPal/5.2.1 (iPad; iOS 17.4; Scale/2.00)"]


def _established(ctx: Ctx, rate: float, min_days: float, max_days: float, tier: str, asns: list[int],
                 n_nets: int = 2) -> tuple[str, Profile, Traffic, AccountRecord]:
    """An established verified account and its usual (ServeGen-shaped) traffic."""
    rng = ctx.rng
    acct = ctx.account()
    prof = new_profile(rng, acct, shape_for(rng, rate), int(rng.integers(1, 5)), n_nets, asns)
    t = honest_events(rng, prof, arrivals(rng, prof.shape, ctx.w.start_ts, ctx.w.end_ts))
    rec = record(rng, acct, ctx.w.start_ts - int(log_uniform(rng, min_days, max_days) * DAY), tier, True)
    return acct, prof, t, rec


def benchmark_suite(ctx: Ctx) -> Cast:
    """An enterprise tenant (90-1800 days, verified, 0.1-1 req/s usual traffic on one cloud ASN)
    running an eval suite for 30-90 min: 3-20 few-shot templates, CoT on 97-100 %, long
    reasoning outputs, steady 0.5-5 req/s, on a NEW key from a neighbouring /24 of its ASN."""
    rng = ctx.rng
    asn = int(rng.choice(CLOUD_ASNS))
    acct, prof, usual, rec = _established(ctx, (log_uniform(rng, 0.1, 1.0)), 90, 1800, "enterprise", [asn])
    w = ctx.slot(1800, 5400)
    ts = renewal(rng, (log_uniform(rng, 0.5, 5)), w.start_ts, w.end_ts, float(rng.uniform(0.1, 0.5)))
    n = len(ts)
    a, b, c = (int(x) for x in prof.nets[0].split("."))
    net = f"{a}.{b}.{(c + int(rng.choice([-3, -2, -1, 1, 2, 3]))) % 256}"
    comp = long_tokens(rng, n, int(rng.uniform(400, 1200)), int(rng.uniform(2000, 5000)))
    suite = _make(ts, acct, key_id(rng), _ips(rng, [net], n), asn,
                  str(rng.choice(["lm-eval-harness/0.4", "python-httpx/0.27", "openai-python/1.40"])),
                  "atlas-reason", long_tokens(rng, n, 300, 3000), comp,
                  (comp * rng.uniform(0.4, 0.8, n)).astype(np.int64), status(rng, n, 0.005),
                  _fps_templated(rng, n, _fps_random(rng, int(rng.integers(3, 21)))),
                  rng.random(n) < rng.uniform(0.97, 1.0))
    return Cast(_concat([usual, suite]), label("benchmark_suite", [acct], w.start_ts, w.end_ts, True), [rec])


def mobile_app(ctx: Ctx) -> Cast:
    """An established app backend (60-900 days) whose one key arrives from a new residential
    IP (random /24 over 20 consumer ASNs) on nearly every request, phone user agents, short
    diverse prompts, 0.3-4 req/s on the ServeGen day shape, for the whole scenario."""
    rng = ctx.rng
    acct = ctx.account()
    rate = (log_uniform(rng, 0.3, 4))
    ts = first_at(ctx.w.start_ts + int(rng.integers(0, MINUTE)),
                  arrivals(rng, shape_for(rng, rate), ctx.w.start_ts, ctx.w.end_ts))
    n = len(ts)
    nets = [subnet(rng) for _ in range(n)]
    uas = PHONE_UAS[: int(rng.integers(4, len(PHONE_UAS) + 1))]
    t = _make(ts, acct, key_id(rng), [f"{x}.{h}" for x, h in zip(nets, rng.integers(1, 255, n).tolist(), strict=True)],
              rng.choice(RESIDENTIAL_ASNS, n), [uas[i] for i in rng.integers(0, len(uas), n).tolist()],
              str(rng.choice(OLD_MODELS[:2])), long_tokens(rng, n, 15, 600), long_tokens(rng, n, 10, 400), 0,
              status(rng, n, float(rng.uniform(0.005, 0.02))), _fps_random(rng, n), rng.random(n) < 0.01)
    rec = record(rng, acct, ctx.w.start_ts - int(log_uniform(rng, 60, 900) * DAY),
                 str(rng.choice(["pro", "enterprise"])), True)
    return Cast(t, label("mobile_app", [acct], ctx.w.start_ts, ctx.w.end_ts, True), [rec])


def ci_jobs(ctx: Ctx) -> Cast:
    """An established tenant (60-1000 days) whose CI runs every 20-60 min: bursts of 2-8 min
    at 1-6 req/s from a fresh /24 in a big cloud ASN each run, 5-30 fixed test templates,
    short outputs (5-200 tokens), one CI key; plus a little usual traffic."""
    rng = ctx.rng
    acct, prof, usual, rec = _established(ctx, (log_uniform(rng, 0.005, 0.1)), 60, 1000, "pro",
                                          [int(rng.choice(CLOUD_ASNS))], 1)
    period = float(rng.uniform(20, 60)) * MINUTE
    templates = _fps_random(rng, int(rng.integers(5, 31)))
    ci_key, ua = key_id(rng), str(rng.choice(["python-httpx/0.27", "pytest/8.2 python-requests/2.32", "node-fetch/3.3"]))
    rate = float(rng.uniform(1, 6))
    first = ctx.w.start_ts + int(rng.uniform(0, min(period, (ctx.w.end_ts - ctx.w.start_ts) / 2)))
    parts, s = [usual], first
    last_end = first
    while s < ctx.w.end_ts:
        e = min(s + int(rng.uniform(2, 8) * MINUTE), ctx.w.end_ts)
        ts = renewal(rng, rate, s, e, float(rng.uniform(0.3, 1.0)))
        ts = np.concatenate([[s], ts[ts > s]]).astype(np.int64)
        n = len(ts)
        parts.append(_make(ts, acct, ci_key, _ips(rng, [subnet(rng)], n), int(rng.choice(CLOUD_ASNS[:4])), ua,
                           "atlas-small", long_tokens(rng, n, 100, 1500), long_tokens(rng, n, 5, 200), 0,
                           status(rng, n, 0.01), _fps_templated(rng, n, templates)))
        last_end = e
        s += int(period * rng.uniform(0.9, 1.1))
    return Cast(_concat(parts), label("ci_jobs", [acct], first, last_end, True), [rec])


def early_adopters(ctx: Ctx) -> Cast:
    """3-12 established background tenants (below the top 6, busy after the release) moving
    10-60 % of their usual diverse traffic to ``NEW_MODEL`` from 1 min-2 h after its release."""
    rng = ctx.rng
    rel = ctx.release_ts
    after = [t for t in ctx.tenants[6:] if int((t.traffic.ts >= rel).sum()) >= 20]
    pool = after[:75] or [t for t in ctx.tenants if int((t.traffic.ts >= rel).sum()) > 0][:75]
    k = min(int(rng.integers(3, 13)), len(pool))
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False).tolist())]
    for t in chosen:
        since = min(rel + int(log_uniform(rng, 1, 120) * MINUTE), (rel + ctx.w.end_ts) // 2)
        use = (t.traffic.ts >= since) & (rng.random(len(t.traffic)) < rng.uniform(0.1, 0.6))
        for i in np.flatnonzero(use).tolist():
            t.traffic.model[i] = NEW_MODEL
    empty = _make(np.zeros(0, np.int64), "", "", [], 0, "", "", 0, 0)
    return Cast(empty, label("early_adopters", [t.account for t in chosen], rel, ctx.w.end_ts, True), [])


def launch_spike(ctx: Ctx) -> Cast:
    """One of the biggest background tenants (ranks 2-5) ramping to 5-15x its rate for
    30-90 min (diverse prompts, its usual keys, networks and clients; at most ~100k extra
    requests), with 5-15 minute ramps up and down."""
    rng = ctx.rng
    tenant = ctx.tenants[int(rng.integers(2, min(6, len(ctx.tenants))))]
    w = ctx.slot(1800, 5400)
    factor = float(rng.uniform(5, 15))
    extra = min(tenant.rate_per_s * (factor - 1), 100_000 / ((w.end_ts - w.start_ts) / 1000))
    ts = renewal(rng, extra, w.start_ts, w.end_ts, float(rng.uniform(1.0, 2.5)))
    r = rng.uniform(5, 15) * MINUTE
    keep = np.minimum(ramp(ts, w.start_ts, r), 1 - ramp(ts, w.end_ts - r, r))
    ts = ts[rng.random(len(ts)) < keep]
    t = honest_events(rng, tenant.profile, ts)
    return Cast(t, label("launch_spike", [tenant.account], w.start_ts, w.end_ts, True), [])


def startup_ramp(ctx: Ctx) -> Cast:
    """A young (1-10 days), verified, paying startup ramping from nothing to 0.3-3 req/s of
    diverse work over 0.5-2.5 h, from a cloud ASN, on 1-3 keys."""
    rng = ctx.rng
    acct = ctx.account()
    peak = (log_uniform(rng, 0.3, 3))
    prof = new_profile(rng, acct, shape_for(rng, peak), int(rng.integers(1, 4)), int(rng.integers(1, 3)),
                       [int(rng.choice(CLOUD_ASNS))])
    prof.templated = 0.0
    w = ctx.slot(3600, 3 * 3600)
    ts = renewal(rng, peak, w.start_ts, ctx.w.end_ts, float(rng.uniform(1.2, 3)))
    ts = ts[rng.random(len(ts)) < ramp(ts, w.start_ts, rng.uniform(0.5, 2.5) * 3600_000)]
    if len(ts) == 0:
        ts = np.array([w.start_ts], np.int64)
    rec = record(rng, acct, w.start_ts - int(rng.uniform(1, 10) * DAY), str(rng.choice(["pro", "enterprise"])), True)
    return Cast(honest_events(rng, prof, ts), label("startup_ramp", [acct], w.start_ts, ctx.w.end_ts, True), [rec])


def research_lab(ctx: Ctx) -> Cast:
    """A young-ish (5-60 days) verified research account: human-driven sessions of 5-40 min
    (bursty, CV 1.5-4, 0.02-0.3 req/s) with 10-60 min pauses; long outputs (800-8000 tokens,
    20-70 % reasoning), CoT on 20-50 %, diverse prompts, from a university network."""
    rng = ctx.rng
    acct = ctx.account()
    net, asn = subnet(rng), int(rng.integers(1000, 65000))
    cot = float(rng.uniform(0.2, 0.5))
    parts, s = [], ctx.w.start_ts + int(rng.uniform(0, 30) * MINUTE)
    while s < ctx.w.end_ts:
        e = min(s + int(rng.uniform(5, 40) * MINUTE), ctx.w.end_ts)
        ts = renewal(rng, (log_uniform(rng, 0.02, 0.3)), s, e, float(rng.uniform(1.5, 4)))
        parts.append(ts)
        s = e + int(rng.uniform(10, 60) * MINUTE)
    ts = np.concatenate(parts + [np.array([ctx.w.start_ts + min(31 * MINUTE, (ctx.w.end_ts - ctx.w.start_ts) // 4)], np.int64)])
    ts = np.sort(ts[ts < ctx.w.end_ts])
    n = len(ts)
    comp = long_tokens(rng, n, 800, 8000)
    t = _make(ts, acct, key_id(rng), _ips(rng, [net], n), asn,
              str(rng.choice(["python-requests/2.32", "openai-python/1.40", "jupyter-ai/2.19"])),
              np.where(rng.random(n) < 0.8, "atlas-reason", "atlas-large").tolist(), long_tokens(rng, n, 50, 4000),
              comp, (comp * rng.uniform(0.2, 0.7, n)).astype(np.int64), status(rng, n, 0.01),
              _fps_random(rng, n), rng.random(n) < cot)
    rec = record(rng, acct, ctx.w.start_ts - int(rng.uniform(5, 60) * DAY), "pro", True)
    return Cast(t, label("research_lab", [acct], ctx.w.start_ts, ctx.w.end_ts, True), [rec])
