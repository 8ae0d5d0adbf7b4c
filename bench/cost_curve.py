#!/usr/bin/env python
"""Cost per event against the number of tracked accounts: flat or logarithmic, never linear.

Issue 4 goal 5: events/s and µs/event at 1k, 10k, 100k and 1M accounts.

For each account count A, in this one process and without a broker (so the broker and the
consumer do not dominate), the worker's own batch path runs over pre-encoded events:
``ColumnBuilder.decode`` per batch (msgspec per message, every other check per batch, as the
worker) -> ``PartitionMonitor.step`` with offsets, summaries for the
cross-account view drained -- what :class:`streams.engine.DetectionEngine` does per partition
batch, minus Kafka. Events come from ``bench/pipeline_throughput.py``'s generator (JSON as
the simulator writes it, heavy-tailed tenants, Poisson arrivals at ``--event-rate`` of event
time so windows close during the run; every account sends at least once).

Two passes per point, each timed on its own:

* warm-up: the first ``max(A, --warm-events)`` events of one generated stream, in which
  every account appears (slots, baselines, sketches and cached hashes are created: the
  first-sight cost) ...
* measured: the ``--events`` that follow in the same stream, over the same A accounts with
  the same keys, networks and user agents -- the steady state.

The figure to compare is the measured pass's CPU µs/event (steadier than the wall rate on a
shared machine); the table also shows wall events/s and the warm-up's µs/event.
``--with-broker`` adds, per point, the whole pipeline through a broker with
``pipeline_throughput``'s machinery (produce N events, then a real DetectionEngine in a
thread consumes them; that column includes first-sight costs and the consumer).

Run from the repository root::

    python bench/cost_curve.py                                   # 1k,10k,100k,1M accounts, 2M events each
    python bench/cost_curve.py --accounts 1000,100000 --events 500000 --json
    python bench/cost_curve.py --with-broker --events 500000     # + the broker path (embedded Tansu)
    python bench/cost_curve.py --smoke                           # CI-sized
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import resource
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:  # run as a script from anywhere; the bench helpers live next to it
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import pipeline_throughput as pt  # noqa: E402

from models.monitor import MonitorConfig, PartitionMonitor  # noqa: E402
from streams.columns import ColumnBuilder  # noqa: E402
from streams.settings import Settings  # noqa: E402

DEFAULT_ACCOUNTS = "1000,10000,100000,1000000"


def monitor_config(settings: Settings) -> MonitorConfig:
    """What DetectionEngine builds from its settings."""
    return MonitorConfig(
        window_ms=settings.window_s * 1000, allowed_lateness_ms=settings.allowed_lateness_s * 1000,
        warmup_windows=settings.warmup_windows, cooldown_windows=settings.cooldown_windows,
        dedup_horizon_ms=settings.dedup_horizon_s * 1000)


def split_partitions(keys: list[bytes], values: list[bytes], parts: int) -> list[list[bytes]]:
    """Values per partition by key, order kept (a stable hash stands in for the producer's)."""
    if parts == 1:
        return [values]
    out: list[list[bytes]] = [[] for _ in range(parts)]
    for k, v in zip(keys, values, strict=True):
        out[zlib.crc32(k) % parts].append(v)
    return out


class BatchPath:
    """Decode -> columns -> monitor, per partition, in batches (DetectionEngine minus Kafka)."""

    def __init__(self, cfg: MonitorConfig, parts: int) -> None:
        self.builder = ColumnBuilder()
        self.monitors = [PartitionMonitor(cfg) for _ in range(parts)]
        self.next_offset = [0] * parts
        self.counted = self.rejected = self.late = self.findings = self.summaries = 0

    def run(self, per_part: list[list[bytes]], batch: int) -> tuple[int, float, float]:
        """Feed every partition's values, batches taken round-robin; (events, wall s, cpu s)."""
        cursors = [0] * len(per_part)
        n = sum(len(v) for v in per_part)
        w0, c0 = time.perf_counter(), time.process_time()
        left = True
        while left:
            left = False
            for p, values in enumerate(per_part):
                lo = cursors[p]
                if lo >= len(values):
                    continue
                chunk = values[lo:lo + batch]
                cursors[p] = lo + len(chunk)
                left = left or cursors[p] < len(values)
                self._step(p, chunk)
        return n, time.perf_counter() - w0, time.process_time() - c0

    def _step(self, p: int, values: list[bytes]) -> None:
        decoded = self.builder.decode(values)   # as the worker: the whole batch at once
        self.rejected += len(decoded.rejected)
        if not len(decoded):
            return
        cols = decoded.columns
        mon = self.monitors[p]
        start = self.next_offset[p]
        offsets = start + np.asarray(decoded.kept, dtype=np.int64)
        self.next_offset[p] = start + len(values)
        res = mon.step(cols, offsets)
        self.counted += res.counted
        self.late += len(res.late)
        self.findings += len(res.findings)
        self.summaries += len(mon.drain_summaries())


def measure_point(accounts: int, args: argparse.Namespace, cfg: MonitorConfig) -> dict[str, Any]:
    seed = args.seed + accounts % 1009
    n_warm = max(accounts, args.warm_events)
    t0 = time.perf_counter()
    # one stream: its first n_warm events (every account sends in them) are the warm-up, so
    # the measured pass sees the same accounts with the same keys, networks and agents
    wl = pt.generate_events(n_warm + args.events, accounts, args.event_rate, seed,
                            id_prefix=f"c{accounts}", cover_within=n_warm)
    keys = [k for k, _v, _t in wl.events]
    vals = [v for _k, v, _t in wl.events]
    info = {"accounts_active_measured": len(set(keys[n_warm:])), "mean_bytes": wl.mean_bytes,
            "event_time_s": (wl.events[-1][2] - wl.events[n_warm][2]) / 1000.0,
            "giant_share": wl.giant_share}
    del wl
    prep_s = time.perf_counter() - t0
    warm_parts = split_partitions(keys[:n_warm], vals[:n_warm], args.partitions)
    meas_parts = split_partitions(keys[n_warm:], vals[n_warm:], args.partitions)
    del keys, vals
    gc.collect()

    path = BatchPath(cfg, args.partitions)
    n_w, wall_w, cpu_w = path.run(warm_parts, args.batch)
    closed_w = sum(m.counters.windows_closed for m in path.monitors)
    counted_w = path.counted
    del warm_parts
    gc.collect()
    n_m, wall_m, cpu_m = path.run(meas_parts, args.batch)
    mons = path.monitors
    out: dict[str, Any] = {
        "accounts": accounts, "tracked_accounts": sum(len(m.accounts) for m in mons),
        "warm_events": n_w, "warm_s": wall_w, "warm_cpu_s": cpu_w,
        "warm_us_per_event": cpu_w / n_w * 1e6,
        "events": n_m, "seconds": wall_m, "cpu_s": cpu_m,
        "events_per_s": n_m / wall_m if wall_m > 0 else float("nan"),
        "us_per_event": cpu_m / n_m * 1e6,
        "wall_us_per_event": wall_m / n_m * 1e6,
        "windows_closed": sum(m.counters.windows_closed for m in mons) - closed_w,
        "counted": path.counted - counted_w, "rejected": path.rejected, "late": path.late,
        "findings": path.findings, "summaries": path.summaries,
        "rss_mib": pt.rss_mib(), "prepare_s": prep_s, **info,
    }
    if out["counted"] != n_m:
        out["warning"] = (f"{n_m - out['counted']:,} of {n_m:,} measured events were not counted "
                          f"(rejected {path.rejected}, late {path.late})")
    del path, meas_parts, mons
    gc.collect()
    return out


def broker_point(accounts: int, args: argparse.Namespace, bootstrap: str,
                 broker_pid: int | None) -> dict[str, Any]:
    """The whole pipeline through the broker at this account count (pipeline_throughput)."""
    u = uuid.uuid4().hex[:8]
    topic = f"cost-requests-{u}"
    wl = pt.generate_events(args.events, accounts, args.event_rate, args.seed + accounts % 1009,
                            id_prefix=f"c{u}")
    pt.create_topic(bootstrap, topic, args.partitions)
    produce = pt.produce_all(bootstrap, topic, wl.events, broker_pid)
    del wl
    gc.collect()
    res = pt.pipeline_run(bootstrap, topic, args.partitions, args.events, broker_pid,
                          None, args.timeout, None, args.idle_partition_s)
    gc.collect()
    topics = [topic, *res.extra["topics"]]
    if args.broker:   # leave an external broker as we found it (best effort)
        from confluent_kafka.admin import AdminClient

        with contextlib.suppress(Exception):
            for fut in AdminClient({"bootstrap.servers": bootstrap}).delete_topics(
                    topics, operation_timeout=10).values():
                with contextlib.suppress(Exception):
                    fut.result()
    return {"accounts": accounts, "events": res.events, "events_per_s": res.events_per_s,
            "us_per_event": res.cpu_us_per_event,
            "engine_thread_us_per_event": res.extra["engine_thread_cpu_us_per_event"],
            "produce_events_per_s": produce.events_per_s, "counted": res.extra["counted"],
            "windows_closed": res.extra["windows_closed"],
            "tracked_accounts": res.extra["tracked_accounts"]}


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x == x else "n/a"


def report(args: argparse.Namespace, info: dict[str, Any], points: list[dict[str, Any]],
           broker_points: list[dict[str, Any]]) -> dict[str, Any]:
    w = 100
    print("=" * w)
    print(f"cost_curve  decode -> columns -> PartitionMonitor.step, no broker; {args.events:,} measured "
          f"events per point, {args.partitions} partition(s), batches of {args.batch:,}")
    print(f"host {info['host']}; window {info['window_s']} s, lateness {info['lateness_s']} s, "
          f"event rate {args.event_rate:,.0f} ev/s of event time")
    print("-" * w)
    print(f"{'accounts':>10} {'tracked':>10} {'active*':>9} {'events/s':>10} {'µs/event':>9} "
          f"{'wall µs/ev':>10} {'warm-up µs/ev':>13} {'windows':>8} {'findings':>8} {'RSS MiB':>8}")
    for p in points:
        print(f"{p['accounts']:>10,} {p['tracked_accounts']:>10,} {p['accounts_active_measured']:>9,} "
              f"{p['events_per_s']:>10,.0f} {p['us_per_event']:>9.2f} {p['wall_us_per_event']:>10.2f} "
              f"{p['warm_us_per_event']:>13.2f} {p['windows_closed']:>8} {p['findings']:>8} "
              f"{p['rss_mib'] or 0:>8,.0f}")
    print("  * active: distinct accounts in the measured events; µs/event is CPU time of the "
          "measured pass; warm-up: the first pass (every account's first sighting)")
    for p in points:
        if "warning" in p:
            print(f"WARNING {p['accounts']:,} accounts: {p['warning']}")
    if broker_points:
        print("-" * w)
        print(f"with the broker (pipeline_throughput machinery: {args.events:,} events produced, then "
              f"a DetectionEngine in a thread; includes first sightings and the consumer)")
        print(f"{'accounts':>10} {'events/s':>10} {'µs/event':>9} {'engine µs/ev':>12} {'counted':>10}")
        for b in broker_points:
            print(f"{b['accounts']:>10,} {_fmt_rate(b['events_per_s']):>10} {b['us_per_event']:>9.2f} "
                  f"{b['engine_thread_us_per_event'] or float('nan'):>12.2f} {b['counted']:>10,}")
    print("-" * w)
    lo, hi = points[0], points[-1]
    ratio = hi["us_per_event"] / lo["us_per_event"]
    acc_ratio = hi["accounts"] / lo["accounts"]
    log_ratio = (math.log(hi["accounts"]) / math.log(lo["accounts"])
                 if lo["accounts"] > 1 else float("inf"))
    xs = np.log([p["accounts"] for p in points])
    ys = np.log([p["us_per_event"] for p in points])
    exponent = float(np.polyfit(xs, ys, 1)[0]) if len(points) >= 2 else float("nan")
    print(f"ratio µs/event {hi['accounts']:,} / {lo['accounts']:,} accounts : {ratio:.2f}x  "
          f"(accounts x{acc_ratio:,.0f}; linear would be x{acc_ratio:,.0f}, logarithmic "
          f"x{log_ratio:.2f})")
    print(f"ratio events/s {hi['accounts']:,} / {lo['accounts']:,} accounts : "
          f"{hi['events_per_s'] / lo['events_per_s']:.2f}x")
    print(f"fitted exponent b in µs/event ~ accounts^b : {exponent:.3f}  (0 flat, 1 linear)")
    ok = ratio <= max(log_ratio, 1.0) and len(points) >= 2
    if broker_points and len(broker_points) >= 2:
        bratio = broker_points[-1]["us_per_event"] / broker_points[0]["us_per_event"]
        print(f"with the broker, ratio µs/event                   : {bratio:.2f}x")
    verdict = "MET" if ok else "NOT MET"
    print(f"issue 4 goal  cost flat or logarithmic in accounts (ratio <= x{log_ratio:.2f}) : {verdict}")
    print("=" * w)
    return {"config": info, "points": points, "broker_points": broker_points,
            "ratio_us_per_event": ratio, "log_ratio": log_ratio, "exponent": exponent,
            "goals": {"flat_or_log": ok}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--accounts", default=DEFAULT_ACCOUNTS,
                    help=f"comma-separated account counts (default {DEFAULT_ACCOUNTS})")
    ap.add_argument("--events", type=int, default=2_000_000,
                    help="measured events per point (default 2,000,000; with --with-broker it must "
                         "be >= every account count)")
    ap.add_argument("--warm-events", type=int, default=100_000,
                    help="warm-up events per point, at least the account count (default 100,000)")
    ap.add_argument("--partitions", type=int, default=1,
                    help="partition monitors the events are spread over by account (default 1)")
    ap.add_argument("--batch", type=int, default=10_000, help="events per batch (the worker's batch_max)")
    ap.add_argument("--event-rate", type=float, default=5_000.0,
                    help="events per second of event time (default 5,000: a 60 s window per 300k events)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--with-broker", action="store_true",
                    help="also run the whole pipeline through a broker per point (slow)")
    ap.add_argument("--broker", help="HOST:PORT for --with-broker (default: an embedded Tansu)")
    ap.add_argument("--idle-partition-s", type=float, default=600.0,
                    help="engine idle_partition_s for --with-broker (default 600: no idle advance)")
    ap.add_argument("--timeout", type=float, default=600.0, help="--with-broker: give up on a run after this")
    ap.add_argument("--smoke", action="store_true",
                    help="CI-sized: accounts 200,2000, 20,000 events, 5,000 warm-up events, "
                         "event rate 200/s (windows close)")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line at the end")
    args = ap.parse_args(argv)
    if args.smoke:
        args.accounts, args.events, args.warm_events, args.event_rate = "200,2000", 20_000, 5_000, 200.0
    try:
        args.account_list = sorted({int(x) for x in args.accounts.split(",") if x.strip()})
    except ValueError:
        ap.error("--accounts: comma-separated integers")
    if not args.account_list or args.account_list[0] < 1:
        ap.error("--accounts: at least one positive count")
    if args.with_broker and args.events < args.account_list[-1]:
        ap.error(f"--events ({args.events:,}) must be >= the largest account count "
                 f"({args.account_list[-1]:,}) with --with-broker: every account sends at least once")
    if args.partitions < 1 or args.batch < 1:
        ap.error("--partitions and --batch must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = Settings()
    cfg = monitor_config(s)
    info = {"accounts": args.account_list, "events": args.events, "warm_events": args.warm_events,
            "partitions": args.partitions, "batch": args.batch, "event_rate": args.event_rate,
            "window_s": s.window_s, "lateness_s": s.allowed_lateness_s,
            "host": f"{platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}"}
    points = []
    for a in args.account_list:
        p = measure_point(a, args, cfg)
        points.append(p)
        print(f"[{a:,} accounts] {p['events_per_s']:,.0f} events/s, {p['us_per_event']:.2f} µs/event "
              f"(warm-up {p['warm_us_per_event']:.2f}), prepared in {p['prepare_s']:.0f} s",
              file=sys.stderr, flush=True)
    broker_points: list[dict[str, Any]] = []
    if args.with_broker:
        with contextlib.ExitStack() as stack:
            bootstrap, broker_pid, info["broker"] = pt.open_broker(stack, args.broker)
            for a in args.account_list:
                b = broker_point(a, args, bootstrap, broker_pid)
                broker_points.append(b)
                print(f"[{a:,} accounts, broker] {b['events_per_s']:,.0f} events/s", file=sys.stderr,
                      flush=True)
    results = report(args, info, points, broker_points)
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
