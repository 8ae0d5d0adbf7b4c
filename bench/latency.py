#!/usr/bin/env python
"""Detection latency under live traffic: alert ``detected_at`` minus the triggering event's arrival.

Issue 4 goal 2: at 50% of the throughput rate, p50 <= 1 s and p99 <= 2 s.

Detection runs on event time: a window [s, e) of a partition closes once the partition's
watermark (largest event time seen) reaches e + allowed lateness, and the alerts of that
window are stamped ``detected_at`` when the worker emits them. This script produces live
traffic whose event time *is* the wall clock at the moment of sending (``ts`` = wall ms), so
the first event with ``ts >= e + lateness`` -- the one that closes the window -- is sent at
wall time e + lateness, and

    latency = detected_at - (window_end_ts + allowed_lateness_ms)

is the time from the triggering event's arrival to the alert. Per run:

1. a broker (an embedded Tansu unless ``--broker``) and fresh topics / app id;
2. ``--rate``: a fixed rate in events/s, or ``auto`` (default) = 50% of the pipeline
   throughput measured first on the same broker with ``bench/pipeline_throughput.py``'s
   machinery (``--throughput-events`` events, a DetectionEngine in a thread);
3. the worker: ``--mode process`` (default) a real ``xwatch worker`` process
   (``streams.demo.start_worker_process`` with ``XWATCH_*`` settings: short windows
   ``--window-s`` and ``--lateness-s``), or ``--mode thread``: a DetectionEngine in a thread
   of this process (shares the GIL with the producer: pessimistic);
4. ``--duration`` seconds of traffic at the fixed rate (open loop: a stall is caught up,
   and the achieved rate is printed): background events replayed from
   ``pipeline_throughput.generate_events`` (heavy-tailed tenants over ``--accounts``
   accounts) with fresh event ids and ts = now, plus ``--campaign-accounts`` templated,
   reasoning-heavy extraction accounts per window (``--campaign-requests`` requests each in
   every window, 90% asking for chain of thought, long completions, near-duplicate prompt
   fingerprints). Campaign accounts are renamed every window (camp-<window>-<j>), so every
   window opens new incidents and every closed window yields ``firing`` alerts;
5. alerts are read from the alert topic; only ``firing`` alerts of windows that began after
   ``--warmup-s`` and were closed by real traffic (e + lateness <= the last event sent) count.
   Also measured: when the alert was readable on the topic ("delivered"), and the worker's
   processing lag = wall clock - the worker's watermark (``xwatch_watermark_ms`` on
   /metrics, or the engine's metrics in thread mode) sampled every 0.25 s: how far behind
   the newest produced event the worker's processing is.

Run from the repository root::

    python bench/latency.py                                # auto rate, 60 s, worker process
    python bench/latency.py --rate 20000 --duration 60 --json
    python bench/latency.py --mode thread --rate 5000
    python bench/latency.py --smoke --broker 127.0.0.1:9092   # CI-sized
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:  # run as a script from anywhere; the bench helpers live next to it
        sys.path.insert(0, _p)

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
import pipeline_throughput as pt  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from streams.alert_view import AlertReader  # noqa: E402
from streams.alerts import Alert  # noqa: E402
from streams.broker import free_port  # noqa: E402
from streams.demo import fetch_metrics, start_worker_process, stop_process, wait_healthy  # noqa: E402
from streams.engine import DetectionEngine  # noqa: E402
from streams.settings import Settings, Topics  # noqa: E402
from streams.simulate import WireEvent  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

GOAL_P50_MS = 1_000
GOAL_P99_MS = 2_000
BUCKETS_MS = [50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000]


# -- traffic ---------------------------------------------------------------------------------
class Traffic:
    """Pre-encoded background events whose event id and ts are spliced in at send time,
    and campaign events encoded on the fly (a few hundred per second)."""

    def __init__(self, accounts: int, pool: int, window_ms: int, campaign_accounts: int,
                 campaign_requests: int, seed: int) -> None:
        wl = pt.generate_events(max(pool, accounts), accounts, 5_000.0, seed, id_prefix="pool")
        self.keys: list[bytes] = []
        self.tails: list[bytes] = []
        for key, value, _ts in wl.events:
            cut = value.index(b',"account_id":')
            self.keys.append(key)
            self.tails.append(value[cut:])
        self.mean_bytes = wl.mean_bytes
        self.window_ms = window_ms
        self.k = campaign_accounts
        self.campaign_requests = campaign_requests
        rng = np.random.default_rng(seed + 1)
        self.rng = rng
        self.templates = [int(x) for x in rng.integers(0, 2**63, size=max(1, campaign_accounts))]
        self.enc = msgspec.json.Encoder()

    def campaign_event(self, event_id: str, j: int, ts: int) -> tuple[bytes, bytes]:
        rng = self.rng
        name = f"camp-{ts // self.window_ms}-{j}"
        fp = self.templates[j]
        for _ in range(int(rng.integers(0, 4))):   # near-duplicates of the account's template
            fp ^= 1 << int(rng.integers(0, 64))
        completion = int(rng.integers(1_500, 4_000))
        ev = WireEvent(
            event_id=event_id, ts=ts, account_id=name, api_key_id=f"{name}-key",
            model="atlas-reason", endpoint="/v1/chat/completions", status=200,
            prompt_tokens=int(rng.integers(200, 600)), completion_tokens=completion,
            ip=f"10.{j % 250}.{(j // 250) % 250}.{int(rng.integers(1, 250))}", asn=64_000 + j,
            user_agent=f"camp-agent/{j}", reasoning_tokens=completion // 2, prompt_fp=f"{fp:016x}",
            flags=["cot_request"] if rng.random() < 0.9 else None)
        return name.encode(), self.enc.encode(ev)


@dataclass
class ProduceStats:
    sent: int = 0
    campaign_sent: int = 0
    seconds: float = 0.0
    first_ts: int = 0
    last_ts: int = 0
    max_behind_s: float = 0.0
    buffer_full: int = 0
    failed: list[str] = field(default_factory=list)


def produce_live(bootstrap: str, topic: str, traffic: Traffic, rate: float, duration_s: float,
                 linger_ms: int, run_id: str) -> ProduceStats:
    """Open-loop producer: ``rate`` background events/s plus the campaign, ts = wall ms."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms,
                  "batch.num.messages": 10_000, "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576, "log.connection.close": False})
    st = ProduceStats()

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            st.failed.append(str(err))

    produce, poll = p.produce, p.poll

    def send(key: bytes, value: bytes, ts: int) -> None:
        while True:
            try:
                produce(topic, value, key, timestamp=ts, on_delivery=on_delivery)
                return
            except BufferError:
                st.buffer_full += 1
                poll(0.005)

    keys, tails, pool_n = traffic.keys, traffic.tails, len(traffic.tails)
    head = ('{"event_id":"' + run_id + "-").encode()
    c_rate = traffic.k * traffic.campaign_requests / (traffic.window_ms / 1000.0)
    t0 = time.monotonic()
    end = t0 + duration_s
    st.first_ts = int(time.time() * 1000)
    sent = sent_c = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        el = now - t0
        due = int(el * rate) - sent
        st.max_behind_s = max(st.max_behind_s, due / rate if rate > 0 else 0.0)
        ts = int(time.time() * 1000)
        ts_b = str(ts).encode()
        for i in range(sent, sent + due):
            if not i & 1023:   # a fresh clock reading every 1024 events
                ts = int(time.time() * 1000)
                ts_b = str(ts).encode()
                poll(0)
            j = i % pool_n
            send(keys[j], b"".join((head, str(i).encode(), b'","ts":', ts_b, tails[j])), ts)
        sent += max(due, 0)
        due_c = int(el * c_rate) - sent_c
        for i in range(sent_c, sent_c + due_c):
            ts = int(time.time() * 1000)
            key, value = traffic.campaign_event(f"{run_id}-c{i}", i % max(traffic.k, 1), ts)
            send(key, value, ts)
        sent_c += max(due_c, 0)
        st.last_ts = ts
        poll(0)
        time.sleep(0.002)
    st.seconds = time.monotonic() - t0
    left = p.flush(60)
    if left:
        st.failed.append(f"{left} undelivered after flush")
    st.sent, st.campaign_sent = sent, sent_c
    return st


# -- the worker ------------------------------------------------------------------------------
class Worker:
    """A real worker process or a DetectionEngine thread, with a watermark probe."""

    def __init__(self, mode: str, settings: Settings, workdir: Path) -> None:
        self.mode, self.settings = mode, settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.engine: DetectionEngine | None = None
        self.thread: threading.Thread | None = None
        self.port = free_port()
        self.log = workdir / "worker.log"

    def start(self, timeout_s: float = 90.0) -> None:
        s = self.settings
        if self.mode == "process":
            env = {"XWATCH_APP_ID": s.app_id, "XWATCH_PARTITIONS": str(s.partitions),
                   "XWATCH_TOPIC_REQUESTS": s.topics.requests, "XWATCH_TOPIC_ACCOUNTS": s.topics.accounts,
                   "XWATCH_TOPIC_ALERTS": s.topics.alerts, "XWATCH_TOPIC_DLQ": s.topics.dlq,
                   "XWATCH_WINDOW_S": str(s.window_s),
                   "XWATCH_ALLOWED_LATENESS_S": str(s.allowed_lateness_s)}
            self.proc = start_worker_process(s.broker, self.port, self.log, env)
            if not wait_healthy(self.port, self.proc, timeout_s):
                raise RuntimeError(f"worker not healthy; log {self.log}:\n{self._log_tail()}")
        else:
            self.engine = DetectionEngine(s)
            self.thread = threading.Thread(target=self.engine.run, name="engine", daemon=True)
            self.thread.start()
            if not self.engine.wait_ready(timeout_s):
                raise RuntimeError("engine did not get its partitions in time")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""

    def watermark_ms(self) -> int | None:
        if self.engine is not None:
            return self.engine.metrics.watermark_ms
        try:
            return int(fetch_metrics(self.port).get("xwatch_watermark_ms", -1))
        except OSError:
            return None

    def metrics(self) -> dict[str, float]:
        if self.engine is not None:
            m = self.engine.metrics
            return {"xwatch_events_counted_total": m.events_counted, "xwatch_late_events_total": m.late_events,
                    "xwatch_duplicate_events_total": m.duplicates, "dlq": sum(m.dlq.values())}
        with contextlib.suppress(OSError):
            return fetch_metrics(self.port)
        return {}

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self.engine is not None and self.thread is not None:
            self.engine.stop()
            self.thread.join(60)


# -- stats -----------------------------------------------------------------------------------
def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {k: float("nan") for k in ("p50", "p90", "p99", "max", "min", "mean")}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "min": float(a.min()),
            "mean": float(a.mean())}


def histogram(values: Sequence[float], width: int = 40) -> list[str]:
    edges = [float("-inf"), *BUCKETS_MS, float("inf")]
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(counts)):
            if v < edges[i + 1]:
                counts[i] += 1
                break
    top = max([1, *counts])
    out = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        label = (f"< {hi:,.0f} ms" if lo == float("-inf") else
                 f">= {lo:,.0f} ms" if hi == float("inf") else f"{lo:,.0f}-{hi:,.0f} ms")
        bar = "#" * max(1 if c else 0, round(width * c / top))
        out.append(f"  {label:>15} {c:>6}  {bar}")
    return out


def _nan(x: float) -> bool:
    return x != x


# -- the run ---------------------------------------------------------------------------------
def measure_throughput(bootstrap: str, broker_pid: int | None, args: argparse.Namespace) -> float:
    """Pipeline events/s on this machine and broker, with pipeline_throughput's machinery."""
    u = uuid.uuid4().hex[:8]
    topic = f"lat-tput-{u}"
    wl = pt.generate_events(args.throughput_events, min(args.accounts, args.throughput_events),
                            5_000.0, args.seed, id_prefix=f"t{u}")
    pt.create_topic(bootstrap, topic, args.partitions)
    pt.produce_all(bootstrap, topic, wl.events, broker_pid)
    del wl
    res = pt.pipeline_run(bootstrap, topic, args.partitions, args.throughput_events, broker_pid,
                          None, 300.0, None, 600.0)
    gc.collect()
    return res.events_per_s


def run(args: argparse.Namespace, bootstrap: str, broker_pid: int | None, broker_desc: str) -> dict[str, Any]:
    throughput = None
    if args.rate == "auto":
        print("measuring pipeline throughput for --rate auto ...", file=sys.stderr, flush=True)
        throughput = measure_throughput(bootstrap, broker_pid, args)
        rate = 0.5 * throughput
    else:
        rate = float(args.rate)
    u = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        {}, broker=bootstrap, app_id=f"lat-{u}", partitions=args.partitions,
        topics=Topics(requests=f"lat-req-{u}", accounts=f"lat-acc-{u}", alerts=f"lat-alerts-{u}",
                      dlq=f"lat-dlq-{u}"),
        window_s=args.window_s, allowed_lateness_s=args.lateness_s, session_timeout_s=6,
        idle_partition_s=2, snapshot_interval_s=5, web_enabled=False, log_level="warning")
    ensure_topics(settings)
    window_ms, lateness_ms = settings.window_s * 1000, settings.allowed_lateness_s * 1000
    traffic = Traffic(args.accounts, args.pool, window_ms, args.campaign_accounts,
                      args.campaign_requests, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="xwatch-latency-"))
    worker = Worker(args.mode, settings, workdir)
    alerts: list[tuple[Alert, int]] = []     # (alert, wall ms when read from the topic)
    lags: list[tuple[float, int]] = []       # (monotonic, lag ms)
    stop = threading.Event()
    reader = AlertReader(bootstrap, settings.topics.alerts)

    def read_alerts() -> None:
        while not stop.is_set():
            for a in reader.poll(0.1):
                alerts.append((a, int(time.time() * 1000)))

    def probe() -> None:
        while not stop.is_set():
            wm = worker.watermark_ms()
            now = int(time.time() * 1000)
            if wm is not None and wm > 0:
                lags.append((time.monotonic(), now - wm))
            stop.wait(0.25)

    t_start = time.monotonic()
    try:
        worker.start()
        join_s = time.monotonic() - t_start
        threads = [threading.Thread(target=read_alerts, daemon=True), threading.Thread(target=probe, daemon=True)]
        for t in threads:
            t.start()
        print(f"worker ready ({args.mode}, {join_s:.1f} s); producing {rate:,.0f} events/s for "
              f"{args.duration:g} s ...", file=sys.stderr, flush=True)
        t_prod = time.monotonic()
        st = produce_live(bootstrap, settings.topics.requests, traffic, rate, args.duration,
                          args.linger_ms, f"L{u}")
        t_prod_end = time.monotonic()
        # windows closed by real traffic have their alerts out within a few seconds; later
        # windows are closed by the idle flush and are not counted
        time.sleep(args.drain_s)
        final = worker.metrics()
    finally:
        stop.set()
        worker.stop()
        with contextlib.suppress(Exception):
            reader.close()
        worker.engine = None
        gc.collect()   # the engine's producers sit in reference cycles: close them now
    steady_from = st.first_ts + int(args.warmup_s * 1000)
    last_closing = st.last_ts - lateness_ms   # windows ending at or before this were closed by traffic
    lat_all: list[float] = []
    delivered: list[float] = []
    by_rule: dict[str, list[float]] = {}
    windows_with_alert: set[int] = set()
    counted_alerts = 0
    for a, read_ms in alerts:
        if a.status != "firing" or a.window_start_ts < steady_from or a.window_end_ts > last_closing:
            continue
        trig = a.window_end_ts + lateness_ms
        lat = a.detected_at - trig
        lat_all.append(lat)
        delivered.append(read_ms - trig)
        by_rule.setdefault(a.rule, []).append(lat)
        windows_with_alert.add(a.window_start_ts)
        counted_alerts += 1
    first_w = -(-steady_from // window_ms) * window_ms
    windows_expected = max(0, (last_closing - first_w) // window_ms)
    t_lo = t_prod + args.warmup_s
    lag_vals = [lag for t, lag in lags if t_lo <= t <= t_prod_end]
    return {
        "config": {
            "mode": args.mode, "rate": rate, "rate_arg": args.rate, "throughput_measured": throughput,
            "duration_s": args.duration, "warmup_s": args.warmup_s, "window_s": settings.window_s,
            "lateness_s": settings.allowed_lateness_s, "partitions": settings.partitions,
            "accounts": args.accounts, "campaign_accounts": args.campaign_accounts,
            "campaign_requests": args.campaign_requests, "linger_ms": args.linger_ms,
            "broker": broker_desc, "mean_bytes": traffic.mean_bytes, "app_id": settings.app_id,
            "host": f"{platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}",
            "worker_log": str(worker.log) if args.mode == "process" else None,
        },
        "join_s": join_s,
        "produced": st.sent + st.campaign_sent, "produced_campaign": st.campaign_sent,
        "achieved_rate": (st.sent + st.campaign_sent) / st.seconds if st.seconds else 0.0,
        "producer_max_behind_s": st.max_behind_s, "producer_failed": st.failed[:5],
        "alerts_read": len(alerts), "alerts_counted": counted_alerts,
        "alerts_by_rule": {k: len(v) for k, v in sorted(by_rule.items())},
        "windows_expected": int(windows_expected), "windows_with_alert": len(windows_with_alert),
        "latency_ms": percentiles(lat_all), "delivered_ms": percentiles(delivered),
        "latency_by_rule_ms": {k: percentiles(v) for k, v in sorted(by_rule.items())},
        "lag_ms": percentiles(lag_vals), "lag_samples": len(lag_vals),
        "histogram": histogram(lat_all), "latencies_ms": lat_all,
        "worker_metrics": {k: v for k, v in final.items() if k.startswith(("xwatch_events", "xwatch_late",
                           "xwatch_dup", "xwatch_dlq", "xwatch_alerts", "dlq"))},
    }


def report(r: dict[str, Any]) -> dict[str, Any]:
    c = r["config"]
    w = 84
    lat, dl, lag = r["latency_ms"], r["delivered_ms"], r["lag_ms"]
    print("=" * w)
    how = ("a real `xwatch worker` process (streams.demo.start_worker_process, XWATCH_* settings)"
           if c["mode"] == "process" else "a DetectionEngine in a thread of this process (shares the GIL with the producer)")
    print(f"latency  worker: {how}")
    print(f"broker {c['broker']}  |  {c['host']}")
    rate_src = (f"auto = 50% of the measured pipeline throughput {c['throughput_measured']:,.0f} ev/s"
                if c["throughput_measured"] else "fixed (--rate)")
    print(f"rate {c['rate']:,.0f} events/s ({rate_src}); achieved {r['achieved_rate']:,.0f} ev/s incl. "
          f"campaign, {r['produced']:,} events in {c['duration_s']:g} s; producer at most "
          f"{r['producer_max_behind_s']:.2f} s behind schedule")
    print(f"windows {c['window_s']} s, allowed lateness {c['lateness_s']} s, {c['partitions']} partitions, "
          f"{c['accounts']:,} background accounts + {c['campaign_accounts']} campaign accounts per window "
          f"x {c['campaign_requests']} requests; warm-up {c['warmup_s']:g} s excluded; join {r['join_s']:.1f} s")
    print("-" * w)
    print(f"firing alerts measured: {r['alerts_counted']} ({r['alerts_by_rule']}); windows with alerts "
          f"{r['windows_with_alert']} of {r['windows_expected']} closed by traffic; alerts read "
          f"{r['alerts_read']}")
    print(f"{'':38}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}  (ms)")

    def row(label: str, p: dict[str, float]) -> None:
        vals = "".join(f"{p[k]:>8.0f}" if not _nan(p[k]) else f"{'n/a':>8}" for k in ("p50", "p90", "p99", "max"))
        print(f"{label:38}{vals}")

    row("detected_at - (window end + lateness)", lat)
    row("alert readable on topic - same", dl)
    for rule, p in r["latency_by_rule_ms"].items():
        row(f"  {rule}", p)
    row(f"worker lag: now - watermark (n={r['lag_samples']})", lag)
    print("histogram of detected_at - (window end + lateness):")
    for line in r["histogram"]:
        print(line)
    wm = r["worker_metrics"]
    if wm:
        print("worker: " + ", ".join(f"{k}={v:,.0f}" for k, v in sorted(wm.items())))
    print("-" * w)
    ok50 = not _nan(lat["p50"]) and lat["p50"] <= GOAL_P50_MS
    ok99 = not _nan(lat["p99"]) and lat["p99"] <= GOAL_P99_MS
    print(f"issue 4 goal  p50 <= {GOAL_P50_MS:,} ms : {'MET' if ok50 else 'NOT MET'} ({lat['p50']:.0f} ms)")
    print(f"issue 4 goal  p99 <= {GOAL_P99_MS:,} ms : {'MET' if ok99 else 'NOT MET'} ({lat['p99']:.0f} ms)")
    if c["throughput_measured"] is None:
        print("  (rate given with --rate: the goal is stated at 50% of the throughput rate)")
    if r["alerts_counted"] == 0:
        print("WARNING no firing alert was measured: the run says nothing about latency")
    print("=" * w)
    r["goals"] = {"p50": ok50, "p99": ok99}
    return r


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--rate", default="auto",
                    help="background events/s, or 'auto' = 50%% of the measured pipeline throughput (default)")
    ap.add_argument("--throughput-events", type=int, default=300_000,
                    help="events for the --rate auto throughput measurement (default 300,000)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of live traffic (default 60)")
    ap.add_argument("--warmup-s", type=float, default=6.0,
                    help="alerts of windows starting in the first seconds are not counted (default 6)")
    ap.add_argument("--drain-s", type=float, default=4.0, help="wait for alerts after the last event (default 4)")
    ap.add_argument("--mode", choices=["process", "thread"], default="process",
                    help="worker as a real process (default) or a DetectionEngine thread")
    ap.add_argument("--window-s", type=int, default=2, help="window length (default 2 s)")
    ap.add_argument("--lateness-s", type=int, default=1, help="allowed lateness (default 1 s)")
    ap.add_argument("--partitions", type=int, default=4, help="partitions of the request topic (default 4)")
    ap.add_argument("--accounts", type=int, default=10_000, help="background accounts (default 10,000)")
    ap.add_argument("--pool", type=int, default=200_000, help="distinct background events to cycle (default 200,000)")
    ap.add_argument("--campaign-accounts", type=int, default=20, help="campaign accounts per window (default 20)")
    ap.add_argument("--campaign-requests", type=int, default=60,
                    help="requests of each campaign account per window (default 60; the rule needs 30)")
    ap.add_argument("--linger-ms", type=int, default=20, help="producer linger.ms (default 20)")
    ap.add_argument("--broker", help="HOST:PORT of a running broker (default: start an embedded Tansu)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--smoke", action="store_true",
                    help="CI-sized: thread mode, rate 2000, 10 s, 2,000 accounts, 3 s warm-up")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line at the end")
    args = ap.parse_args(argv)
    if args.smoke:
        args.mode, args.rate, args.duration, args.warmup_s = "thread", "2000", 10.0, 3.0
        args.accounts, args.pool, args.drain_s = 2_000, 20_000, 3.0
    if args.rate != "auto":
        try:
            if float(args.rate) <= 0:
                raise ValueError
        except ValueError:
            ap.error("--rate: a positive number of events/s or 'auto'")
    if args.window_s < 1 or args.lateness_s < 0 or args.partitions < 1 or args.campaign_accounts < 0:
        ap.error("bad --window-s / --lateness-s / --partitions / --campaign-accounts")
    if args.campaign_requests * args.campaign_accounts and args.campaign_requests < 30:
        print("note: --campaign-requests below 30 cannot trigger templated_extraction", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        bootstrap, broker_pid, desc = pt.open_broker(stack, args.broker)
        results = report(run(args, bootstrap, broker_pid, desc))
    if args.json:
        out = dict(results)
        out.pop("latencies_ms", None)
        out["latency_mean_ms"] = statistics.fmean(results["latencies_ms"]) if results["latencies_ms"] else None
        print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
