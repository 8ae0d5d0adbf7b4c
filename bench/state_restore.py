#!/usr/bin/env python
"""State written and restore time for one partition, on a real broker (issue 11, item 3).

For each ``--accounts`` size: one :class:`models.monitor.PartitionMonitor` is fed two
windows in which every account sends two requests; its snapshot is written with
:class:`streams.state_store.SnapshotStore` (timed) and read back by a fresh store (timed).
Then the same snapshot is written for three more input partitions, once into a state topic
with four partitions (each input partition has its own home) and once into a one-partition
state topic (the layout before this change), and partition 0 is restored from each: the
records read and the seconds show what partitioning the state topic saves.

Snapshots are still whole (every account each time): "bytes written per second" is the
snapshot size over the snapshot interval (``XWATCH_SNAPSHOT_INTERVAL_S``, default 5 s).

    python bench/state_restore.py --accounts 100000 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import msgspec
import numpy as np
from confluent_kafka.admin import AdminClient, NewTopic

from models.batch import RequestColumns
from models.monitor import MonitorConfig, PartitionMonitor
from streams.broker import EmbeddedBroker
from streams.state_store import SnapshotStore


def monitor_with(n: int, seed: int = 1) -> PartitionMonitor:
    rng = np.random.default_rng(seed)
    m = PartitionMonitor(MonitorConfig())
    names = [f"acct-{i}" for i in range(n)]
    t0 = 1_700_000_000_000
    serial = 0                               # unique event ids (dedup keys)
    for w in range(3):                       # two closed windows, the third opens
        for r in range(2 if w < 2 else 1):
            step = 200_000
            for lo in range(0, n, step):
                idx = np.arange(lo, min(n, lo + step))
                k = len(idx)
                ts = np.full(k, t0 + w * 60_000 + r * 20_000 + lo * 10_000 // n, dtype=np.int64)
                keys = np.arange(serial + 1, serial + k + 1, dtype=np.uint64)
                serial += k
                m.step(RequestColumns.from_lists(dedup_key=keys,
                    account_ids=[names[i] for i in idx.tolist()], ts=ts,
                    prompt_tokens=rng.integers(20, 800, k), completion_tokens=rng.integers(10, 1500, k),
                    key_hash=(idx % 7 + 1).astype(np.uint32), net_hash=(idx % 13 + 1).astype(np.uint32),
                    asn_hash=np.full(k, 3, np.uint32), ua_hash=np.full(k, 4, np.uint32),
                    model_hash=np.full(k, 5, np.uint32),
                    prompt_fp=rng.integers(0, 2**63, k).astype(np.uint64), has_fp=np.ones(k, bool)))
        m.drain_summaries()
    return m


def topic(admin: AdminClient, partitions: int) -> str:
    name = f"bench-state-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, partitions, 1, config={"cleanup.policy": "compact"})])[name].result(10)
    return name


def measure(bootstrap: str, n: int) -> dict[str, float]:
    t = time.perf_counter()
    mon = monitor_with(n)
    build_s = time.perf_counter() - t
    state = mon.to_dict()
    size = len(msgspec.msgpack.encode(state))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    out: dict[str, float] = {"accounts": n, "tracked": len(mon.accounts), "build_s": round(build_s, 1),
                             "snapshot_bytes": size, "bytes_per_account": round(size / n, 1),
                             "written_bytes_per_s_at_5s": round(size / 5.0)}
    for layout, parts in (("home", 4), ("one_partition", 1)):
        name = topic(admin, parts)
        store = SnapshotStore(bootstrap, name, "api.requests", max_chunk_bytes=512 * 1024)
        for p in range(4):
            t = time.perf_counter()
            store.save(p, 1000, state)
            if p == 0:
                out[f"save_s_{layout}"] = round(time.perf_counter() - t, 2)
        fresh = SnapshotStore(bootstrap, name, "api.requests")
        t = time.perf_counter()
        snaps = fresh.load([0], timeout_s=600)
        out[f"restore_s_{layout}"] = round(time.perf_counter() - t, 2)
        out[f"restore_records_{layout}"] = fresh.last_restore_read
        assert snaps[0].next_offset == 1000
        t = time.perf_counter()
        PartitionMonitor.from_dict(snaps[0].state)
        out["rebuild_monitor_s"] = round(time.perf_counter() - t, 2)
        admin.delete_topics([name])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--broker", help="use this Kafka instead of an embedded broker")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    broker = None
    bootstrap = args.broker
    if bootstrap is None:
        broker = EmbeddedBroker()
        bootstrap = broker.start()
    try:
        rows = [measure(bootstrap, n) for n in args.accounts]
    finally:
        if broker is not None:
            broker.stop()
    for r in rows:
        print(f"{r['accounts']:>9,} accounts: snapshot {r['snapshot_bytes'] / 1e6:7.1f} MB "
              f"({r['bytes_per_account']} B/account, {r['written_bytes_per_s_at_5s'] / 1e6:.1f} MB/s "
              f"at one snapshot per 5 s); save {r['save_s_home']} s; restore of one partition "
              f"out of four: {r['restore_s_home']} s, {r['restore_records_home']} records "
              f"(one-partition state topic: {r['restore_s_one_partition']} s, "
              f"{r['restore_records_one_partition']} records); rebuild {r['rebuild_monitor_s']} s")
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
