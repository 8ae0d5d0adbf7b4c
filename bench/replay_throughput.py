#!/usr/bin/env python
"""``xwatch replay --speed max`` throughput against the raw confluent-kafka produce rate.

One run does, against one broker (an embedded Tansu unless ``--broker``):

1. write N synthetic contract-valid request events (~290 bytes of JSON each, 10,000
   accounts) to a JSON Lines file, unless ``--file`` names one;
2. ``--repeat`` rounds of, in alternating order:
   (a) replay: :func:`streams.replay.runner.replay` from the file into a fresh topic at max
       speed - read, validate every line, key by account, timestamp = ts, produce - timed
       from the start until the producer's final flush returns;
   (b) raw: the same lines, keys and timestamps, preloaded in memory, produced by a bare
       confluent-kafka ``Producer`` with the same configuration into another fresh topic,
       timed the same way - what the broker and client take with no work of ours;
   (before the rounds: a dry run - read + validate only, no Kafka - for the split of the
   cost, and an untimed warm-up produce of 50,000 events;)
3. print events/s of each, their ratio, CPU per event, and whether the goal (replay >=
   200,000 events/s on the embedded broker) is met; ``--json`` adds one JSON line.

Every replayed event is checked to have arrived (partition ends read to end-of-partition,
since the embedded broker reports its high watermark short).

Run from the repository root::

    python bench/replay_throughput.py --events 300000
    python bench/replay_throughput.py --events 500000 --repeat 3 --json
    python bench/replay_throughput.py --broker kafka:9092 --file day.jsonl.gz

Absolute rates depend on whoever else uses the cores (the broker shares them); the ratio
replay/raw measured in the same run is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from streams.broker import EmbeddedBroker  # noqa: E402
from streams.replay.jsonl import JsonLinesSource  # noqa: E402
from streams.replay.offsets import true_ends  # noqa: E402
from streams.replay.runner import ReplayOptions, replay  # noqa: E402
from streams.replay.sink import TopicSink, producer_config  # noqa: E402
from streams.replay.validate import EventValidator  # noqa: E402

GOAL_EVENTS_PER_S = 200_000
T0 = 1_767_225_600_000
MODELS = ["atlas-large", "atlas-small", "nimbus-2", "nimbus-2-mini"]
ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
AGENTS = ["python-requests/2.31", "openai-python/1.30", "curl/8.4.0", "node-fetch/3.3"]


def write_events(path: Path, n: int, accounts: int = 10_000, seed: int = 7) -> float:
    """N events, ~290 bytes each, event time advancing ~1 ms an event; mean bytes/line."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    total = 0
    with open(path, "wb") as f:
        buf = []
        for i in range(n):
            acct = min(int(rng.paretovariate(1.1)) - 1, accounts - 1)   # heavy-tailed tenants
            ev = {
                "event_id": f"e{i:010d}", "ts": T0 + i + rng.randrange(3),
                "account_id": f"acct-{acct:06d}", "api_key_id": f"k{acct:06d}.{rng.randrange(3)}",
                "model": rng.choice(MODELS), "endpoint": rng.choice(ENDPOINTS),
                "status": 429 if rng.random() < 0.03 else 200,
                "prompt_tokens": rng.randrange(20, 4000), "completion_tokens": rng.randrange(1, 2000),
                "ip": f"10.{acct % 256}.{rng.randrange(256)}.{rng.randrange(256)}",
                "asn": 64500 + acct % 50, "user_agent": rng.choice(AGENTS),
                "prompt_fp": f"{rng.getrandbits(64):016x}",
            }
            line = enc.encode(ev) + b"\n"
            total += len(line)
            buf.append(line)
            if len(buf) == 10_000:
                f.writelines(buf)
                buf.clear()
        f.writelines(buf)
    return total / max(1, n) - 1


def create_topic(admin: AdminClient, name: str, partitions: int) -> None:
    admin.create_topics([NewTopic(name, partitions, -1)])[name].result(timeout=30)


def run_replay(bootstrap: str, path: Path, topic: str, partitions: int) -> dict[str, Any]:
    sink = TopicSink(bootstrap, topic, partitions=partitions)
    sink.check()
    wall, cpu = time.perf_counter(), time.process_time()
    stats = replay(JsonLinesSource(path), sink, ReplayOptions())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if stats.failed or stats.undelivered or stats.invalid:
        raise SystemExit(f"replay lost events: {stats}")
    return {"events": stats.produced, "seconds": wall, "events_per_s": stats.produced / wall,
            "cpu_us_per_event": cpu / stats.produced * 1e6}


def load_raw(path: Path) -> tuple[list[bytes], list[str], list[int]]:
    """The lines with their keys and timestamps, worked out before the raw run is timed."""
    values, keys, stamps = [], [], []
    check = EventValidator().check
    for batch in JsonLinesSource(path).batches():
        for raw in batch.values:
            ev = check(raw)
            values.append(raw)
            keys.append(ev.account_id)
            stamps.append(ev.ts)
    return values, keys, stamps


def run_raw(bootstrap: str, topic: str, data: tuple[list[bytes], list[str], list[int]]) -> dict[str, Any]:
    values, keys, stamps = data
    producer = Producer(producer_config(bootstrap))
    produce, poll = producer.produce, producer.poll
    wall, cpu = time.perf_counter(), time.process_time()
    for lo in range(0, len(values), 5000):
        for value, key, ts in zip(values[lo:lo + 5000], keys[lo:lo + 5000], stamps[lo:lo + 5000],
                                  strict=True):
            try:
                produce(topic, value, key, -1, None, None, ts)
            except BufferError:
                while True:
                    poll(0.01)
                    try:
                        produce(topic, value, key, -1, None, None, ts)
                        break
                    except BufferError:
                        continue
        poll(0)
    left = producer.flush(120)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if left:
        raise SystemExit(f"raw produce left {left} messages undelivered")
    n = len(values)
    return {"events": n, "seconds": wall, "events_per_s": n / wall, "cpu_us_per_event": cpu / n * 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=500_000, help="synthetic events to write (default 500k)")
    ap.add_argument("--file", type=Path, help="replay this JSONL file instead of synthetic events")
    ap.add_argument("--broker", help="bootstrap servers; default: start an embedded broker")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (medians are reported)")
    ap.add_argument("--json", action="store_true", help="also print one JSON line of results")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="xwatch-replay-bench-"))
    if args.file:
        path = args.file
        mean_bytes = path.stat().st_size / max(1, sum(1 for _ in open(path, "rb")))
    else:
        path = tmp / "events.jsonl"
        t = time.perf_counter()
        mean_bytes = write_events(path, args.events)
        print(f"wrote {args.events:,} events ({mean_bytes:.0f} bytes each) to {path} "
              f"in {time.perf_counter() - t:.1f}s")

    broker = None
    bootstrap = args.broker
    if bootstrap is None:
        broker = EmbeddedBroker()
        bootstrap = broker.start()
        print(f"embedded broker on {bootstrap}")
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        raw_data = load_raw(path)
        n = len(raw_data[0])
        t = time.perf_counter()
        dry = replay(JsonLinesSource(path), None, ReplayOptions(dry_run=True))
        dry_rate = dry.produced / (time.perf_counter() - t)
        # warm-up (not timed): the broker's first topic and the client's first connection
        warm = f"bench-warmup-{uuid.uuid4().hex[:6]}"
        create_topic(admin, warm, args.partitions)
        run_raw(bootstrap, warm, tuple(x[:50_000] for x in raw_data))  # type: ignore[arg-type]
        rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for r in range(args.repeat):
            tag = uuid.uuid4().hex[:6]
            rep_topic, raw_topic = f"bench-replay-{tag}", f"bench-raw-{tag}"
            create_topic(admin, rep_topic, args.partitions)
            create_topic(admin, raw_topic, args.partitions)
            if r % 2 == 0:
                rep = run_replay(bootstrap, path, rep_topic, args.partitions)
                raw = run_raw(bootstrap, raw_topic, raw_data)
            else:
                raw = run_raw(bootstrap, raw_topic, raw_data)
                rep = run_replay(bootstrap, path, rep_topic, args.partitions)
            arrived = sum(true_ends(bootstrap, rep_topic).values())
            if arrived != n:
                raise SystemExit(f"replay topic holds {arrived} events, expected {n}")
            rounds.append((rep, raw))
            print(f"round {r + 1}: replay {rep['events_per_s']:,.0f}/s "
                  f"({rep['cpu_us_per_event']:.2f} us CPU/event), raw produce "
                  f"{raw['events_per_s']:,.0f}/s ({raw['cpu_us_per_event']:.2f} us CPU/event), "
                  f"ratio {rep['events_per_s'] / raw['events_per_s']:.2f}")
    finally:
        if broker is not None:
            broker.stop()
    rep_rate = statistics.median(r["events_per_s"] for r, _ in rounds)
    raw_rate = statistics.median(r["events_per_s"] for _, r in rounds)
    ratio = statistics.median(a["events_per_s"] / b["events_per_s"] for a, b in rounds)
    print()
    print(f"events            {n:,} x {mean_bytes:.0f} bytes, {args.partitions} partitions, "
          f"{'embedded Tansu' if broker else bootstrap}, {args.repeat} round(s), medians")
    print(f"read+validate     {dry_rate:>10,.0f} events/s (dry run, no Kafka)")
    print(f"replay --speed max{rep_rate:>10,.0f} events/s")
    print(f"raw produce       {raw_rate:>10,.0f} events/s")
    print(f"replay / raw      {ratio:>10.2f}")
    met = rep_rate >= GOAL_EVENTS_PER_S
    print(f"goal >= {GOAL_EVENTS_PER_S:,}/s  {'met' if met else 'NOT met'}")
    if args.json:
        print(json.dumps({"events": n, "bytes_per_event": round(mean_bytes), "rounds": args.repeat,
                          "broker": "embedded" if broker else bootstrap,
                          "replay_events_per_s": round(rep_rate), "raw_events_per_s": round(raw_rate),
                          "ratio": round(ratio, 3), "dry_run_events_per_s": round(dry_rate),
                          "goal_met": met, "python": platform.python_version()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
