#!/usr/bin/env python
"""Memory per tracked account: N accounts in one worker's partition monitors, no broker.

Issue 4 goal 3: at most 2 KB of state per tracked account, and 1,000,000 accounts in one
worker in at most 3 GiB RSS.

What it does, in this one process:

1. builds ``--partitions`` :class:`models.monitor.PartitionMonitor` objects configured as
   :class:`streams.engine.DetectionEngine` configures them (from :class:`Settings` defaults:
   60 s windows, 30 s lateness, 600 s dedup horizon) -- one worker owning that many partitions;
2. reads VmRSS from ``/proc/self/status`` ("before");
3. feeds ``--windows`` consecutive windows of event time; in every window each of the N
   accounts sends ``--requests-per-window`` requests (default 10 = the behaviour-drift
   detector's minimum, so every account gets a baseline *and* a Page-Hinkley drift detector:
   the worst case for per-account state). Accounts are spread over the partitions; batches
   are :class:`models.batch.RequestColumns` of ``--batch`` rows in event-time order with
   realistic columns (1-3 API keys, 2 networks, user agents, 3 models, random prompt
   fingerprints, heavy-tailed token counts, unique dedup keys);
4. stops with the last window still open -- the steady state of a live worker, which always
   holds one or two open window accumulators -- then ``gc.collect()`` and VmRSS again ("after");
5. prints RSS before/after, RSS delta per account, a breakdown (numpy arrays of the account
   tables and open windows, the event-id dedup index, the rest = Python objects: account id
   strings and index, drift detectors), and the snapshot size per account
   (``len(msgspec.msgpack.encode(monitor.to_dict()))`` summed over monitors / accounts).

The dedup index holds one 8-byte key per event of the last ``dedup_horizon_s`` of event
time: it grows with the event *rate*, not the number of accounts, so it is reported apart
from the per-account figure (and included in the RSS total).

Run from the repository root::

    python bench/memory.py                            # 1,000,000 accounts (~3-4 min on 2 cores)
    python bench/memory.py --accounts 200000 --json
    python bench/memory.py --smoke                    # 2,000 accounts, a few seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:  # run as a script from anywhere; the bench helpers live next to it
        sys.path.insert(0, _p)

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
from pipeline_throughput import START_TS, rss_mib  # noqa: E402

from models.batch import RequestColumns  # noqa: E402
from models.monitor import MonitorConfig, PartitionMonitor  # noqa: E402
from streams.settings import Settings  # noqa: E402

GOAL_BYTES_PER_ACCOUNT = 2048
GOAL_RSS_BYTES = 3 * 1024**3
GOAL_ACCOUNTS = 1_000_000
MiB = 1024 * 1024


def proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM), in KiB; None where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    mib = rss_mib()   # VmRSS, shared with pipeline_throughput
    if mib is None:
        raise RuntimeError("cannot read VmRSS from /proc/self/status (Linux only)")
    return int(mib * MiB)


def rss_after_malloc_trim() -> int | None:
    """VmRSS after glibc's ``malloc_trim(0)`` hands freed heap pages back to the kernel: the
    part of RSS that is live data rather than memory freed by earlier batches but kept by
    the allocator. A worker never trims, so the untrimmed figure is the one the goals use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return rss_bytes()


def monitor_config(settings: Settings) -> MonitorConfig:
    """What DetectionEngine builds from its settings."""
    return MonitorConfig(
        window_ms=settings.window_s * 1000, allowed_lateness_ms=settings.allowed_lateness_s * 1000,
        warmup_windows=settings.warmup_windows, cooldown_windows=settings.cooldown_windows,
        dedup_horizon_ms=settings.dedup_horizon_s * 1000)


class AccountTraits:
    """Fixed per-account attributes the generated requests draw from (bench scaffolding)."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        u32 = np.iinfo(np.uint32).max
        self.n_keys = rng.integers(1, 4, size=n)
        self.key_hash = rng.integers(1, u32, size=(n, 3), dtype=np.uint32)
        self.net_hash = rng.integers(1, u32, size=(n, 2), dtype=np.uint32)
        self.asn_hash = rng.integers(1, u32, size=(n, 2), dtype=np.uint32)
        self.ua_hash = rng.integers(1, u32, size=(n, 2), dtype=np.uint32)
        models = rng.integers(1, u32, size=3, dtype=np.uint32)
        self.model_hash = models[rng.integers(0, 3, size=n)]
        self.models = models
        self.scale = rng.lognormal(5.3, 0.8, size=n)


def make_columns(idx: np.ndarray, ts: np.ndarray, names: list[str], tr: AccountTraits,
                 rng: np.random.Generator) -> RequestColumns:
    m = len(idx)
    which_key = (rng.random(m) * tr.n_keys[idx]).astype(np.int64)
    side = rng.integers(0, 2, size=m)
    model = np.where(rng.random(m) < 0.8, tr.model_hash[idx], tr.models[rng.integers(0, 3, size=m)])
    completion = np.clip(tr.scale[idx] * rng.lognormal(0.0, 0.6, size=m), 1, 30_000).astype(np.int64)
    return RequestColumns.from_lists(
        account_ids=[names[i] for i in idx.tolist()],
        ts=ts,
        prompt_tokens=np.clip(rng.lognormal(5.5, 1.0, size=m), 5, 60_000).astype(np.int64),
        completion_tokens=completion,
        reasoning_tokens=np.where(model == tr.models[2], completion // 3, 0),
        status=np.where(rng.random(m) < 0.97, 200, 429),
        key_hash=tr.key_hash[idx, which_key],
        net_hash=tr.net_hash[idx, side],
        asn_hash=tr.asn_hash[idx, side],
        ua_hash=tr.ua_hash[idx, side],
        model_hash=model,
        prompt_fp=rng.integers(0, 2**63, size=m, dtype=np.int64).astype(np.uint64),
        has_fp=np.ones(m, dtype=np.bool_),
        cot=rng.random(m) < 0.02,
        logprobs=rng.random(m) < 0.01,
        logit_bias=rng.random(m) < 0.002,
        # unique per event, shaped like the column builder's (ts << 32) ^ crc32(event_id)
        dedup_key=(ts.astype(np.uint64) << np.uint64(32))
        ^ rng.integers(0, 2**32, size=m, dtype=np.uint64),
    )


def _nbytes(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    return 0


def breakdown(monitors: list[PartitionMonitor]) -> dict[str, int]:
    """numpy bytes held by the account tables and open windows, and by the dedup index."""
    table = windows = dedup = 0
    drift = 0
    for mon in monitors:
        t = mon.accounts
        table += sum(_nbytes(v) for v in vars(t).values() if isinstance(v, np.ndarray))
        for acc in getattr(mon, "_windows", {}).values():   # internals: best effort
            windows += sum(_nbytes(getattr(acc, f)) for f in
                           ("counters", "bitmaps", "first_ts", "last_ts", "fp_sample", "min_hashes"))
        dedup += sum(int(r.nbytes) for runs in getattr(mon.dedup, "_runs", {}).values() for r in runs)
        for det in mon.detectors:
            drift += len(getattr(det, "_detectors", {}) or {})
    return {"account_tables": table, "open_windows": windows, "dedup_index": dedup,
            "drift_detectors": drift}


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env({}, window_s=args.window_s, dedup_horizon_s=args.dedup_horizon_s)
    cfg = monitor_config(settings)
    n, parts, R = args.accounts, args.partitions, args.requests_per_window
    rng = np.random.default_rng(args.seed)
    traits = AccountTraits(n, rng)
    part_of = rng.integers(0, parts, size=n)
    members = [np.flatnonzero(part_of == p) for p in range(parts)]
    monitors = [PartitionMonitor(cfg) for _ in range(parts)]
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    cpu0 = time.process_time()

    # account ids are created after the "before" reading: the strings are state (the
    # account tables keep them); only this list of references is dropped at the end
    names = [f"acct-{i:07d}" for i in range(n)]
    w = cfg.window_ms
    events = 0
    step_s = 0.0
    for win in range(args.windows):
        start = START_TS + win * w
        for p, mem in enumerate(members):
            k = len(mem)
            if k == 0:
                continue
            total = R * k
            # R passes over the partition's accounts, each in a fresh random order, with event
            # time rising evenly through the window (in order within the partition)
            order = np.concatenate([rng.permutation(mem) for _ in range(R)])
            ts = start + (np.arange(total, dtype=np.int64) * w) // total
            for lo in range(0, total, args.batch):
                hi = min(lo + args.batch, total)
                cols = make_columns(order[lo:hi], ts[lo:hi], names, traits, rng)
                s0 = time.perf_counter()
                monitors[p].step(cols)
                monitors[p].drain_summaries()   # the worker sends them on after every batch
                step_s += time.perf_counter() - s0
                events += hi - lo
            del order, ts
        if not args.quiet:
            tracked = sum(len(m.accounts) for m in monitors)
            print(f"  window {win + 1}/{args.windows}: {events:,} events, {tracked:,} accounts, "
                  f"RSS {rss_bytes() / MiB:,.0f} MiB, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    feed_s = time.perf_counter() - t0
    feed_cpu = time.process_time() - cpu0
    del names
    gc.collect()
    rss1 = rss_bytes()
    hwm_kib = proc_status_kib("VmHWM")
    rss1_trimmed = rss_after_malloc_trim()

    tracked = sum(len(m.accounts) for m in monitors)
    parts_bd = breakdown(monitors)
    t1 = time.perf_counter()
    snap = sum(len(msgspec.msgpack.encode(m.to_dict())) for m in monitors)
    snap_s = time.perf_counter() - t1
    gc.collect()
    delta = rss1 - rss0
    numpy_state = parts_bd["account_tables"] + parts_bd["open_windows"]
    per_acct = delta / tracked if tracked else float("nan")
    per_acct_state = (delta - parts_bd["dedup_index"]) / tracked if tracked else float("nan")
    counters = [m.counters for m in monitors]
    return {
        "config": {
            "accounts": n, "partitions": parts, "windows": args.windows,
            "requests_per_window": R, "window_s": settings.window_s,
            "allowed_lateness_s": settings.allowed_lateness_s,
            "dedup_horizon_s": settings.dedup_horizon_s, "batch": args.batch, "seed": args.seed,
            "host": f"{platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}",
        },
        "events": events, "tracked_accounts": tracked,
        "windows_closed": sum(c.windows_closed for c in counters),
        "open_windows": sum(len(m.open_windows) for m in monitors),
        "counted": sum(c.events for c in counters),
        "alerts_firing": sum(c.alerts_firing for c in counters),
        "feed_s": feed_s, "feed_cpu_s": feed_cpu, "step_s": step_s,
        "step_us_per_event": step_s / events * 1e6 if events else float("nan"),
        "rss_before_bytes": rss0, "rss_after_bytes": rss1, "rss_after_trim_bytes": rss1_trimmed,
        "peak_rss_bytes": None if hwm_kib is None else hwm_kib * 1024,
        "rss_delta_bytes": delta,
        "bytes_per_account": per_acct,
        "state_bytes_per_account": per_acct_state,
        "breakdown_bytes": {**parts_bd, "numpy_state": numpy_state,
                            "python_objects_and_overhead": delta - numpy_state - parts_bd["dedup_index"]},
        "snapshot_bytes": snap, "snapshot_bytes_per_account": snap / tracked if tracked else float("nan"),
        "snapshot_encode_s": snap_s,
    }


def _yes(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report(r: dict[str, Any]) -> dict[str, Any]:
    c = r["config"]
    b = r["breakdown_bytes"]
    n = r["tracked_accounts"] or 1
    w = 78
    print("=" * w)
    print(f"memory  {r['tracked_accounts']:,} tracked accounts in {c['partitions']} partition "
          f"monitors (one worker), no broker")
    print(f"host {c['host']}")
    print(f"fed {r['events']:,} events: {c['windows']} windows x {c['requests_per_window']} "
          f"requests per account, window {c['window_s']} s, lateness {c['allowed_lateness_s']} s, "
          f"dedup horizon {c['dedup_horizon_s']} s")
    print(f"windows closed {r['windows_closed']}, still open {r['open_windows']}, events counted "
          f"{r['counted']:,}, drift detectors {b['drift_detectors']:,}, firing alerts "
          f"{r['alerts_firing']}")
    print(f"feeding took {r['feed_s']:.1f} s ({r['step_us_per_event']:.2f} µs/event in "
          f"PartitionMonitor.step)")
    print("-" * w)
    print(f"{'':34}{'bytes':>16}{'MiB':>12}{'B/account':>14}")

    def row(label: str, v: float | None) -> None:
        if v is None:
            print(f"{label:34}{'n/a':>16}")
        else:
            print(f"{label:34}{v:>16,.0f}{v / MiB:>12,.1f}{v / n:>14,.1f}")

    row("RSS before (VmRSS)", r["rss_before_bytes"])
    row("RSS after  (VmRSS)", r["rss_after_bytes"])
    row("peak RSS   (VmHWM)", r["peak_rss_bytes"])
    row("RSS after malloc_trim(0)", r["rss_after_trim_bytes"])
    row("RSS delta", r["rss_delta_bytes"])
    row("  numpy: account tables", b["account_tables"])
    row("  numpy: open window accumulators", b["open_windows"])
    row("  dedup index (per event, not acct)", b["dedup_index"])
    row("  Python objects + allocator", b["python_objects_and_overhead"])
    row("snapshot (msgpack of to_dict)", r["snapshot_bytes"])
    print("-" * w)
    state = r["state_bytes_per_account"]
    print(f"RSS delta per account             : {r['bytes_per_account']:,.0f} bytes "
          f"(all in, dedup index included)")
    print(f"state per account (w/o dedup)     : {state:,.0f} bytes")
    print(f"snapshot per account              : {r['snapshot_bytes_per_account']:,.0f} bytes "
          f"(encoded in {r['snapshot_encode_s']:.2f} s)")
    print("-" * w)
    ok_state = state <= GOAL_BYTES_PER_ACCOUNT
    print(f"issue 4 goal  <= {GOAL_BYTES_PER_ACCOUNT:,} bytes of state per account   : "
          f"{_yes(ok_state)} ({state:,.0f} B in RSS, {r['snapshot_bytes_per_account']:,.0f} B snapshot)")
    full = r["tracked_accounts"] >= GOAL_ACCOUNTS
    if full:
        total = r["rss_after_bytes"]
        ok_total = total <= GOAL_RSS_BYTES
        print(f"issue 4 goal  {GOAL_ACCOUNTS:,} accounts in <= 3 GiB RSS : {_yes(ok_total)} "
              f"({total / 1024**3:.2f} GiB RSS; peak {(r['peak_rss_bytes'] or 0) / 1024**3:.2f} GiB)")
    else:
        total = r["rss_before_bytes"] + r["bytes_per_account"] * GOAL_ACCOUNTS
        ok_total = total <= GOAL_RSS_BYTES
        print(f"issue 4 goal  {GOAL_ACCOUNTS:,} accounts in <= 3 GiB RSS : not measured "
              f"(extrapolated {total / 1024**3:.2f} GiB; run with --accounts 1000000)")
    print("=" * w)
    r["goals"] = {"state_bytes_per_account": ok_state,
                  "rss_1m_accounts": ok_total if full else None,
                  "rss_1m_accounts_extrapolated_gib": None if full else total / 1024**3}
    return r


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--accounts", type=int, default=GOAL_ACCOUNTS, help="distinct accounts (default 1,000,000)")
    ap.add_argument("--partitions", type=int, default=4,
                    help="partition monitors in the worker (default 4, the worker's default topic size)")
    ap.add_argument("--windows", type=int, default=4,
                    help="windows of event time to feed; all but the last close (default 4)")
    ap.add_argument("--requests-per-window", type=int, default=10,
                    help="requests of every account in every window (default 10: each account "
                         "gets a drift detector)")
    ap.add_argument("--window-s", type=int, default=None, help="window length (default: Settings' 60 s)")
    ap.add_argument("--dedup-horizon-s", type=int, default=None, help="default: Settings' 600 s")
    ap.add_argument("--batch", type=int, default=50_000, help="rows per step() call (default 50,000)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--smoke", action="store_true",
                    help="tiny run for CI: 2,000 accounts, 3 windows (overrides --accounts/--windows)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line at the end")
    args = ap.parse_args(argv)
    if args.smoke:
        args.accounts, args.windows = 2_000, 3
    if args.accounts < 1 or args.partitions < 1 or args.windows < 1 or args.requests_per_window < 1:
        ap.error("--accounts, --partitions, --windows and --requests-per-window must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = report(run(args))
    results["peak_rss_mib_getrusage"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
