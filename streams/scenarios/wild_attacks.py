"""Attack actors of the ``wild`` scenario (see :mod:`streams.scenarios.wild`), one function per
kind, each ``Ctx -> Cast`` with a label ``confounder=False``. Every parameter is drawn from
the actor's own random stream; the ranges are in the docstrings.
"""

from __future__ import annotations

import numpy as np

from streams.records import AccountRecord
from streams.scenarios.wild import (
    HOSTING_ASNS,
    OLD_MODELS,
    RESIDENTIAL_ASNS,
    SCRIPT_UAS,
    Ctx,
    Profile,
    first_at,
    honest_events,
    key_id,
    label,
    log_uniform,
    log_uniforms,
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
    HOUR,
    MINUTE,
    NEW_MODEL,
    Cast,
    Traffic,
    _concat,
    _fps_random,
    _fps_templated,
    _ips,
    _make,
    _payment_fp,
)

__all__ = ["extraction", "hydra_sparse", "logprob_probe", "low_and_slow", "model_pivot", "proxy_reseller",
           "reasoning_coercion", "reasoning_harvest", "sequential_handover", "slow_swarm", "stolen_key"]

Range = tuple[float, float]


def browser_ua(rng: np.random.Generator) -> str:
    """A browser-like user agent with random versions (many distinct variants)."""
    os_ = str(rng.choice(["Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7",
                          "X11; Linux x86_64", "Windows NT 11.0; Win64; x64"]))
    v = int(rng.integers(110, 131))
    if rng.random() < 0.7:
        return f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{rng.integers(1000, 7000)}.{rng.integers(0, 200)} Safari/537.36"
    return f"Mozilla/5.0 ({os_}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"


def campaign_tokens(rng: np.random.Generator) -> tuple[Range, Range, Range]:
    """One campaign's (completion, reasoning share, prompt) ranges: long reasoning-heavy
    outputs (600-6000 tokens, 30-80 % reasoning) for short prompts."""
    c_lo = float(rng.uniform(600, 2000))
    c_hi = float(rng.uniform(max(c_lo * 1.5, 2500), 6000))
    r_lo = float(rng.uniform(0.3, 0.6))
    r_hi = float(rng.uniform(r_lo + 0.05, 0.8))
    p_lo = float(rng.uniform(20, 150))
    return (c_lo, c_hi), (r_lo, r_hi), (p_lo, float(rng.uniform(p_lo + 50, 600)))


def extraction(rng: np.random.Generator, ts: np.ndarray, *, account: str | list[str], key: str | list[str],
               ip: list[str], asn: int | np.ndarray, ua: str | list[str], fp: np.ndarray, cot: float,
               completion: Range, rshare: Range, prompt: Range, model: str | list[str] = "atlas-reason",
               p429: float = 0.01) -> Traffic:
    """Extraction requests: long reasoning-heavy completions for short prompts."""
    n = len(ts)
    comp = long_tokens(rng, n, int(completion[0]), int(completion[1]))
    reasoning = (comp * rng.uniform(*rshare, size=n)).astype(np.int64)
    return _make(ts, account, key, ip, asn, ua, model, long_tokens(rng, n, int(prompt[0]), int(prompt[1])),
                 comp, reasoning, status(rng, n, p429, 0.002), fp, rng.random(n) < cot)


def _hosting_nets(rng: np.random.Generator, n_nets: int, n_asns: int) -> tuple[list[str], np.ndarray]:
    nets = [subnet(rng) for _ in range(n_nets)]
    asns = rng.choice(HOSTING_ASNS, size=n_asns, replace=False)
    return nets, np.array([asns[i % n_asns] for i in range(n_nets)], np.int64)


def _on_nets(rng: np.random.Generator, nets: list[str], net_asn: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
    idx = rng.integers(0, len(nets), size=n)
    return _ips(rng, nets, n, idx), net_asn[idx]


def _fresh(rng: np.random.Generator, account: str, created_ts: int, payment_fp: str | None = "new") -> AccountRecord:
    return record(rng, account, created_ts, str(rng.choice(["free", "free", "pro"])),
                  verified=bool(rng.random() < 0.1), payment_fp=payment_fp)


def reasoning_harvest(ctx: Ctx) -> Cast:
    """ONE young account (2-48 h old, mostly unverified, free/pro) pulling long reasoning
    completions for distinct question-bank prompts, 30-90 % asking for step-by-step
    reasoning, at a steady 0.3-3 req/s (CV of gaps 0.05-0.5) for 1.5-3 h from one hosting
    /24 or a pool of up to 4 in 1-2 hosting ASNs, on 1-3 keys."""
    rng = ctx.rng
    w = ctx.slot(1.5 * 3600, 3 * 3600)
    acct = ctx.account()
    ts = first_at(w.start_ts, renewal(rng, float(rng.uniform(0.3, 3.0)), w.start_ts, w.end_ts,
                                      float(rng.uniform(0.05, 0.5))))
    n = len(ts)
    n_nets = int(rng.choice([1, 1, 2, 3, 4]))
    nets, net_asn = _hosting_nets(rng, n_nets, min(n_nets, int(rng.integers(1, 3))))
    ip, asn = _on_nets(rng, nets, net_asn, n)
    keys = [key_id(rng) for _ in range(int(rng.integers(1, 4)))]
    comp, rsh, pr = campaign_tokens(rng)
    reason_share = float(rng.uniform(0.8, 1.0))
    model = np.where(rng.random(n) < reason_share, "atlas-reason", "atlas-large").tolist()
    t = extraction(rng, ts, account=acct, key=[keys[i] for i in rng.integers(0, len(keys), n)], ip=ip,
                   asn=asn, ua=str(rng.choice(SCRIPT_UAS)), fp=_fps_random(rng, n),
                   cot=float(rng.uniform(0.3, 0.9)), completion=comp, rshare=rsh, prompt=pr, model=model,
                   p429=float(rng.uniform(0.0, 0.03)))
    rec = _fresh(rng, acct, w.start_ts - int(rng.uniform(2, 48) * HOUR))
    return Cast(t, label("reasoning_harvest", [acct], w.start_ts, w.end_ts, False), [rec])


def slow_swarm(ctx: Ctx) -> Cast:
    """150-500 fresh accounts (created within 1-5 h of each other, 2 h-2 days before), each
    sending one request every 2-8 minutes for 1-3 h, all starting within 2-10 minutes;
    2-6 templates of one family, long reasoning outputs, CoT 40-90 %; 2-5 hosting /24s in
    1-3 ASNs; 1-2 script user agents; payment methods shared by 5-40 accounts, or none."""
    rng = ctx.rng
    w = ctx.slot(3600, 3 * 3600)
    n_acc = int(rng.integers(150, 501))
    accounts = [ctx.account() for _ in range(n_acc)]
    n_nets = int(rng.integers(2, 6))
    nets, net_asn = _hosting_nets(rng, n_nets, min(n_nets, int(rng.integers(1, 4))))
    uas = [str(u) for u in rng.choice(SCRIPT_UAS, size=int(rng.integers(1, 3)), replace=False)]
    templates = _fps_random(rng, int(rng.integers(2, 7)))
    comp, rsh, pr = campaign_tokens(rng)
    cot = float(rng.uniform(0.4, 0.9))
    start_span = rng.uniform(2, 10) * MINUTE
    created0 = w.start_ts - int(rng.uniform(2, 48) * HOUR)
    created_span = rng.uniform(1, 5) * HOUR
    no_payment = rng.random() < 0.3
    group = int(rng.integers(5, 41))
    pays = [_payment_fp(rng) for _ in range(n_acc // group + 1)]
    parts, records = [], []
    for i, acct in enumerate(accounts):
        s = w.start_ts + int(rng.uniform(0, start_span))
        period_s = float(rng.uniform(2, 8)) * 60
        ts = renewal(rng, 1 / period_s, s, w.end_ts, float(rng.uniform(0.2, 1.0)))
        ts = np.concatenate([[s], ts[ts > s]]).astype(np.int64)
        n = len(ts)
        ip, asn = _on_nets(rng, nets, net_asn, n)
        parts.append(extraction(rng, ts, account=acct, key=key_id(rng), ip=ip, asn=asn,
                                ua=uas[i % len(uas)], fp=_fps_templated(rng, n, templates), cot=cot,
                                completion=comp, rshare=rsh, prompt=pr))
        created = min(created0 + int(rng.uniform(0, created_span)), s - MINUTE)
        records.append(_fresh(rng, acct, created, None if no_payment else pays[i // group]))
    return Cast(_concat(parts), label("slow_swarm", accounts, w.start_ts, w.end_ts, False), records)


def hydra_sparse(ctx: Ctx) -> Cast:
    """60-250 fresh accounts of one operation, each sharing only 1-2 of five links: a payment
    method (pool of 10-30), a residential /24 (pool of 10-40 over many consumer ASNs), a
    browser user agent (pool of 3-8 variants), a creation cohort (within 1-2 h) and a
    synchronised start (within 2 minutes); otherwise their own. One template family
    (3-10 templates), CoT 50-95 %, long reasoning outputs, 0.5-4 req/min each, 1-3 h."""
    rng = ctx.rng
    w = ctx.slot(3600, 3 * 3600)
    n_acc = int(rng.integers(60, 251))
    accounts = [ctx.account() for _ in range(n_acc)]
    pays = [_payment_fp(rng) for _ in range(int(rng.integers(10, 31)))]
    n_nets = int(rng.integers(10, 41))
    nets = [subnet(rng) for _ in range(n_nets)]
    net_asn = rng.choice(RESIDENTIAL_ASNS, size=n_nets)
    uas = [browser_ua(rng) for _ in range(int(rng.integers(3, 9)))]
    cohort0 = w.start_ts - int(rng.uniform(3, 72) * HOUR)
    cohort_span = rng.uniform(1, 2) * HOUR
    templates = _fps_random(rng, int(rng.integers(3, 11)))
    comp, rsh, pr = campaign_tokens(rng)
    cot = float(rng.uniform(0.5, 0.95))
    links = ["pay", "net", "ua", "cohort", "sync"]
    parts, records = [], []
    for acct in accounts:
        has = set(rng.choice(links, size=int(rng.integers(1, 3)), replace=False).tolist())
        s = w.start_ts + int(rng.uniform(0, 2 * MINUTE)) if "sync" in has else \
            w.start_ts + int(rng.uniform(0, 0.5) * (w.end_ts - w.start_ts))
        ts = renewal(rng, float(rng.uniform(0.5, 4)) / 60, s, w.end_ts, float(rng.uniform(0.5, 1.5)))
        ts = np.concatenate([[s], ts[ts > s]]).astype(np.int64)
        n = len(ts)
        if "net" in has:
            k = int(rng.integers(0, n_nets))
            own_nets, asn = [nets[k]], int(net_asn[k])
        else:
            own_nets, asn = [subnet(rng)], int(rng.choice(RESIDENTIAL_ASNS))
        ip = _ips(rng, own_nets, n)
        ua = str(rng.choice(uas)) if "ua" in has else browser_ua(rng)
        parts.append(extraction(rng, ts, account=acct, key=key_id(rng), ip=ip, asn=asn, ua=ua,
                                fp=_fps_templated(rng, n, templates), cot=cot, completion=comp,
                                rshare=rsh, prompt=pr))
        created = cohort0 + int(rng.uniform(0, cohort_span)) if "cohort" in has else \
            w.start_ts - int(rng.uniform(0.5, 20) * DAY)
        pay = str(rng.choice(pays)) if "pay" in has else "new"
        records.append(_fresh(rng, acct, min(created, s - MINUTE), pay))
    return Cast(_concat(parts), label("hydra_sparse", accounts, w.start_ts, w.end_ts, False), records)


def proxy_reseller(ctx: Ctx) -> Cast:
    """A proxy service: 5-20 paid accounts (3-40 days old) each mixing distillation (30-70 %:
    templated or question-bank, long reasoning, CoT 40-90 %) with resold customer traffic
    (diverse short prompts from many user agents), 0.05-0.5 req/s each for 1.5-3.5 h;
    the accounts share a payment method, their networks, or both."""
    rng = ctx.rng
    w = ctx.slot(1.5 * 3600, 3.5 * 3600)
    n_acc = int(rng.integers(5, 21))
    accounts = [ctx.account() for _ in range(n_acc)]
    mode = str(rng.choice(["pay", "net", "both"]))
    pay = _payment_fp(rng)
    nets, net_asn = _hosting_nets(rng, int(rng.integers(1, 5)), 1)
    templated = rng.random() < 0.6
    templates = _fps_random(rng, int(rng.integers(3, 15)))
    comp, rsh, pr = campaign_tokens(rng)
    cot = float(rng.uniform(0.4, 0.9))
    mean_share = float(rng.uniform(0.3, 0.7))
    customer_uas = [browser_ua(rng) for _ in range(30)] + list(SCRIPT_UAS)
    parts, records = [], []
    for acct in accounts:
        ts = renewal(rng, (log_uniform(rng, 0.05, 0.5)), w.start_ts, w.end_ts, float(rng.uniform(1, 3)))
        ts = np.concatenate([[w.start_ts + int(rng.uniform(0, 5 * MINUTE))], ts]).astype(np.int64)
        ts.sort()
        n = len(ts)
        own_nets, own_asn = (nets, net_asn) if mode != "pay" else _hosting_nets(rng, 1, 1)
        ip, asn = _on_nets(rng, own_nets, own_asn, n)
        keys = [key_id(rng) for _ in range(int(rng.integers(1, 4)))]
        key = [keys[i] for i in rng.integers(0, len(keys), n)]
        distil = rng.random(n) < np.clip(mean_share + rng.normal(0, 0.05), 0.3, 0.7)
        fp = _fps_templated(rng, n, templates) if templated else _fps_random(rng, n)
        d = extraction(rng, ts, account=acct, key=key, ip=ip, asn=asn, ua="python-httpx/0.27", fp=fp,
                       cot=cot, completion=comp, rshare=rsh, prompt=pr)
        # resold customer traffic on the same events where not distillation
        m = int((~distil).sum())
        d.ua = [str(customer_uas[i]) if not x else "python-httpx/0.27"
                for i, x in zip(rng.integers(0, len(customer_uas), n).tolist(), distil.tolist(), strict=True)]
        d.fp[~distil] = _fps_random(rng, m)
        d.prompt_tokens[~distil] = long_tokens(rng, m, 20, 1500)
        d.completion_tokens[~distil] = long_tokens(rng, m, 10, 500)
        d.reasoning_tokens[~distil] = 0
        d.cot[~distil] = rng.random(m) < 0.03
        d.model = np.where(distil, "atlas-reason", rng.choice(OLD_MODELS[:2], n)).tolist()
        parts.append(d)
        records.append(record(rng, acct, w.start_ts - int(rng.uniform(3, 40) * DAY),
                              str(rng.choice(["pro", "pro", "enterprise"])), bool(rng.random() < 0.8),
                              pay if mode != "net" else "new"))
    return Cast(_concat(parts), label("proxy_reseller", accounts, w.start_ts, w.end_ts, False), records)


def sequential_handover(ctx: Ctx) -> Cast:
    """8-30 accounts of one payment method and/or creation cohort used one after another:
    each pulls templated long reasoning completions at 1-5 req/s for 3-20 minutes until
    rate limited (a run of 10-80 429s over up to a minute), goes silent, and the next
    takes over 2 s-5 min later."""
    rng = ctx.rng
    n_acc = int(rng.integers(8, 31))
    w = ctx.slot(1800, 4 * 3600)
    accounts = [ctx.account() for _ in range(n_acc)]
    mode = str(rng.choice(["pay", "cohort", "both"]))
    pay = _payment_fp(rng)
    cohort0 = w.start_ts - int(rng.uniform(2, 72) * HOUR)
    nets, net_asn = _hosting_nets(rng, int(rng.integers(1, 4)), 1)
    ua = str(rng.choice(SCRIPT_UAS))
    templates = _fps_random(rng, int(rng.integers(2, 12)))
    comp, rsh, pr = campaign_tokens(rng)
    cot = float(rng.uniform(0.4, 0.95))
    rate = float(rng.uniform(1, 5))
    runs = rng.uniform(3, 20, n_acc) * MINUTE
    gaps = log_uniforms(rng, 2, 300, n_acc) * 1000
    scale = min(1.0, (w.end_ts - w.start_ts) / float(runs.sum() + gaps.sum() + n_acc * MINUTE))
    parts, records, t0 = [], [], w.start_ts
    for i, acct in enumerate(accounts):
        ok = renewal(rng, rate, t0, t0 + int(runs[i] * scale), float(rng.uniform(0.2, 0.8)))
        ok = np.concatenate([[t0], ok[ok > t0]]).astype(np.int64)
        limited_from = int(ok[-1]) + 500
        limited = np.sort(limited_from + rng.uniform(0, rng.uniform(10, 60) * 1000 * scale,
                                                     int(rng.integers(10, 81)))).astype(np.int64)
        ts = np.concatenate([ok, limited])
        n = len(ts)
        ip, asn = _on_nets(rng, nets, net_asn, n)
        t = extraction(rng, ts, account=acct, key=key_id(rng), ip=ip, asn=asn, ua=ua,
                       fp=_fps_templated(rng, n, templates), cot=cot, completion=comp, rshare=rsh,
                       prompt=pr, p429=0.0)
        t.status[len(ok):] = 429
        t.completion_tokens[len(ok):] = 0
        t.reasoning_tokens[len(ok):] = 0
        parts.append(t)
        created = cohort0 + int(rng.uniform(0, 2 * HOUR)) if mode != "pay" else \
            w.start_ts - int(rng.uniform(1, 30) * DAY)
        records.append(_fresh(rng, acct, created, pay if mode != "cohort" else "new"))
        t0 = int(ts[-1]) + int(gaps[i] * scale)
    return Cast(_concat(parts), label("sequential_handover", accounts, w.start_ts, t0, False), records)


def model_pivot(ctx: Ctx) -> Cast:
    """3-25 young accounts (6 h-5 days old) sending ordinary traffic (0.005-0.05 req/s) to the
    old models, then 2 min-2 h after ``NEW_MODEL`` appears moving 70-95 % of a 2-10x larger
    volume to it: long reasoning outputs, templated or question-bank, CoT 50-95 %.
    The label starts at the release time."""
    rng = ctx.rng
    w, rel = ctx.w, ctx.release_ts
    n_acc = int(rng.integers(3, 26))
    accounts = [ctx.account() for _ in range(n_acc)]
    nets, net_asn = _hosting_nets(rng, int(rng.integers(1, 6)), int(rng.integers(1, 3)))
    ua = str(rng.choice(SCRIPT_UAS))
    templated = rng.random() < 0.6
    templates = _fps_random(rng, int(rng.integers(2, 10)))
    comp, rsh, pr = campaign_tokens(rng)
    cot = float(rng.uniform(0.5, 0.95))
    new_share = float(rng.uniform(0.7, 0.95))
    boost = float(rng.uniform(2, 10))
    lag = (log_uniform(rng, 2, 120)) * MINUTE
    first = w.start_ts + min(30 * MINUTE, (rel - w.start_ts) // 2)
    parts, records = [], []
    for acct in accounts:
        base = (log_uniform(rng, 0.005, 0.05))
        s = first + int(rng.uniform(0, max(rel - first, 1) * 0.5))
        before = renewal(rng, base, s, rel, float(rng.uniform(1, 2.5)))
        before = np.concatenate([[s], before[before > s]]).astype(np.int64)
        prof = new_profile(rng, acct, shape_for(rng, base), 1, 1, [int(net_asn[0])], [ua])
        prof.nets, prof.model_p = [nets[0]], np.array([0.5, 0.4, 0.1])
        keys = prof.keys
        old = honest_events(rng, prof, before)
        pivot = min(rel + int(lag * rng.uniform(0.8, 1.25)), w.end_ts - 1)
        after = renewal(rng, base * boost, pivot, w.end_ts, float(rng.uniform(0.8, 2)))
        n = len(after)
        ip, asn = _on_nets(rng, nets, net_asn, n)
        to_new = rng.random(n) < new_share
        fp = _fps_templated(rng, n, templates) if templated else _fps_random(rng, n)
        x = extraction(rng, after, account=acct, key=keys[0], ip=ip, asn=asn, ua=ua, fp=fp, cot=cot,
                       completion=comp, rshare=rsh, prompt=pr,
                       model=np.where(to_new, NEW_MODEL, rng.choice(OLD_MODELS, n)).tolist())
        parts += [old, x]
        records.append(_fresh(rng, acct, s - int(rng.uniform(6, 120) * HOUR)))
    return Cast(_concat(parts), label("model_pivot", accounts, rel, w.end_ts, False), records)


def _established(ctx: Ctx, rate: float, min_days: float, max_days: float) -> tuple[str, Traffic, Profile, AccountRecord]:
    """An established honest account with its usual traffic over the whole scenario."""
    from streams.scenarios.servegen import arrivals
    rng = ctx.rng
    acct = ctx.account()
    asns = [int(rng.choice(HOSTING_ASNS[-1:] + [15169, 8075, 14618]))]
    prof = new_profile(rng, acct, shape_for(rng, rate), int(rng.integers(1, 5)), int(rng.integers(1, 3)), asns)
    t = honest_events(rng, prof, arrivals(rng, prof.shape, ctx.w.start_ts, ctx.w.end_ts))
    rec = record(rng, acct, ctx.w.start_ts - int(log_uniform(rng, min_days, max_days) * DAY),
                 str(rng.choice(["pro", "enterprise"])), True)
    return acct, t, prof, rec


def low_and_slow(ctx: Ctx) -> Cast:
    """An established verified account (14-120 days, 0.05-0.5 req/s honest) whose extraction
    share (long reasoning outputs, CoT 40-90 %) ramps from 0 to 30-70 % of its traffic
    over 1-3 h, from its own keys and networks, then stays."""
    rng = ctx.rng
    rate = (log_uniform(rng, 0.05, 0.5))
    acct, honest, prof, rec = _established(ctx, rate, 14, 120)
    ramp_s = float(rng.uniform(3600, 3 * 3600))
    w = ctx.slot(ramp_s, ramp_s * 1.5)
    top = float(rng.uniform(0.3, 0.7))
    ts = renewal(rng, rate * top / (1 - top), w.start_ts, ctx.w.end_ts, float(rng.uniform(0.5, 1.5)))
    ts = ts[rng.random(len(ts)) < ramp(ts, w.start_ts, ramp_s * 1000)]
    n = len(ts)
    idx = rng.integers(0, len(prof.nets), n)
    fp = _fps_templated(rng, n, _fps_random(rng, int(rng.integers(2, 8)))) if rng.random() < 0.5 else _fps_random(rng, n)
    comp, rsh, pr = campaign_tokens(rng)
    ua = prof.uas[0] if rng.random() < 0.5 else str(rng.choice(SCRIPT_UAS))
    x = extraction(rng, ts, account=acct, key=prof.keys[0], ip=_ips(rng, prof.nets, n, idx),
                   asn=prof.net_asn[idx], ua=ua, fp=fp, cot=float(rng.uniform(0.4, 0.9)),
                   completion=comp, rshare=rsh, prompt=pr)
    return Cast(_concat([honest, x]), label("low_and_slow", [acct], w.start_ts, ctx.w.end_ts, False), [rec])


def stolen_key(ctx: Ctx) -> Cast:
    """An established account (30-700 days, 0.02-0.3 req/s honest, which goes on) whose key is
    used for 0.5-2.5 h from 1-3 new hosting /24s, a new user agent, at 3-15x its usual
    rate, pulling long outputs (800-4000 tokens) for diverse prompts, CoT 0-40 %."""
    rng = ctx.rng
    rate = (log_uniform(rng, 0.02, 0.3))
    acct, honest, prof, rec = _established(ctx, rate, 30, 700)
    w = ctx.slot(1800, 2.5 * 3600)
    ts = renewal(rng, rate * float(rng.uniform(3, 15)), w.start_ts, w.end_ts, float(rng.uniform(0.3, 1.5)))
    n = len(ts)
    nets, net_asn = _hosting_nets(rng, int(rng.integers(1, 4)), 1)
    ip, asn = _on_nets(rng, nets, net_asn, n)
    r_lo = float(rng.uniform(0.0, 0.4))
    x = extraction(rng, ts, account=acct, key=prof.keys[0], ip=ip, asn=asn, ua=str(rng.choice(SCRIPT_UAS)),
                   fp=_fps_random(rng, n), cot=float(rng.uniform(0.0, 0.4)), completion=(800, 4000),
                   rshare=(r_lo, r_lo + 0.2), prompt=(50, 2000),
                   model=rng.choice(["atlas-large", "atlas-reason"], n).tolist())
    return Cast(_concat([honest, x]), label("stolen_key", [acct], w.start_ts, w.end_ts, False), [rec])


def logprob_probe(ctx: Ctx) -> Cast:
    """1-3 accounts (hours to 10 days old) sending 0.5-4 req/s in all of tiny completions
    (1-10 tokens), logprobs on 60-100 %, logit_bias on 30-90 %, for 0.5-2 h."""
    rng = ctx.rng
    w = ctx.slot(1800, 2 * 3600)
    n_acc = int(rng.integers(1, 4))
    accounts = [ctx.account() for _ in range(n_acc)]
    total = float(rng.uniform(0.5, 4))
    nets, net_asn = _hosting_nets(rng, int(rng.integers(1, 3)), 1)
    lp, lb = float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.3, 0.9))
    templates = _fps_random(rng, int(rng.integers(5, 40)))
    parts, records = [], []
    for acct in accounts:
        ts = first_at(w.start_ts, renewal(rng, total / n_acc, w.start_ts, w.end_ts, float(rng.uniform(0.1, 1.2))))
        n = len(ts)
        ip, asn = _on_nets(rng, nets, net_asn, n)
        fp = np.where(rng.random(n) < 0.5, _fps_templated(rng, n, templates), _fps_random(rng, n))
        parts.append(_make(ts, acct, key_id(rng), ip, asn, str(rng.choice(SCRIPT_UAS)),
                           str(rng.choice(OLD_MODELS[:2])), long_tokens(rng, n, 10, 300),
                           rng.integers(1, 11, n), 0, status(rng, n, float(rng.uniform(0, 0.05))), fp,
                           False, rng.random(n) < lp, rng.random(n) < lb))
        records.append(_fresh(rng, acct, w.start_ts - int(rng.uniform(3, 240) * HOUR)))
    return Cast(_concat(parts), label("logprob_probe", accounts, w.start_ts, w.end_ts, False), records)


def reasoning_coercion(ctx: Ctx) -> Cast:
    """1-5 fresh accounts (2-72 h old) coercing full reasoning traces: CoT on 70-100 %,
    reasoning share 60-95 %, 1000-8000-token completions, distinct prompts from a huge
    bank, 0.1-1 req/s each for 1-3 h, on one shared hosting network or their own."""
    rng = ctx.rng
    w = ctx.slot(3600, 3 * 3600)
    n_acc = int(rng.integers(1, 6))
    accounts = [ctx.account() for _ in range(n_acc)]
    shared = rng.random() < 0.5
    nets, net_asn = _hosting_nets(rng, int(rng.integers(1, 3)), 1)
    r_lo = float(rng.uniform(0.6, 0.85))
    c_lo = float(rng.uniform(1000, 3000))
    parts, records = [], []
    for acct in accounts:
        s = w.start_ts + int(rng.uniform(0, 20 * MINUTE))
        ts = first_at(s, renewal(rng, float(rng.uniform(0.1, 1.0)), s, w.end_ts, float(rng.uniform(0.3, 1.5))))
        n = len(ts)
        own = (nets, net_asn) if shared else _hosting_nets(rng, 1, 1)
        ip, asn = _on_nets(rng, *own, n)
        parts.append(extraction(rng, ts, account=acct, key=key_id(rng), ip=ip, asn=asn,
                                ua=str(rng.choice(SCRIPT_UAS)), fp=_fps_random(rng, n),
                                cot=float(rng.uniform(0.7, 1.0)), completion=(c_lo, float(rng.uniform(c_lo + 1000, 8000))),
                                rshare=(r_lo, float(rng.uniform(r_lo + 0.03, 0.95))), prompt=(30, 400)))
        records.append(_fresh(rng, acct, s - int(rng.uniform(2, 72) * HOUR)))
    return Cast(_concat(parts), label("reasoning_coercion", accounts, w.start_ts, w.end_ts, False), records)
