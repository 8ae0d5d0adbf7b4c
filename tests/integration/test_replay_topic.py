"""``xwatch replay`` against a real broker (embedded Tansu unless KAFKA_BOOTSTRAP_SERVERS).

Which offset-lookup path each topic-range test covers is in its name and docstring:
``scan`` (binary search on record timestamps) runs everywhere; ``auto`` checks the broker's
answer and falls back to ``scan`` on Tansu; ``broker`` (offsets_for_times trusted) runs only
on a real Kafka.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.cli import main
from streams.replay.jsonl import JsonLinesSource
from streams.replay.runner import ReplayOptions, replay
from streams.replay.sink import TopicSink
from streams.replay.topic import TopicSource

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
EXTERNAL = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))


def event(i: int, ts: int | str | None = None) -> bytes:
    return msgspec.json.encode({
        "event_id": f"e{i}", "ts": T0 + i * 10 if ts is None else ts, "account_id": f"acct-{i % 7}",
        "api_key_id": "k", "model": "m", "endpoint": "/v1/chat/completions", "status": 200,
        "prompt_tokens": i, "completion_tokens": 2})


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)


def read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 8.0
             ) -> list[tuple[bytes | None, bytes | None, int]]:
    """(key, value, timestamp) of every message, reading until ``expect`` arrived and a short
    quiet spell confirms no more follow."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "session.timeout.ms": 6000,
                  "fetch.wait.max.ms": 10})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[tuple[bytes | None, bytes | None, int]] = []
        deadline = time.monotonic() + timeout_s
        quiet_until = None
        while time.monotonic() < deadline:
            msgs = [m for m in c.consume(1000, 0.2) if not m.error()]
            out += [(m.key(), m.value(), m.timestamp()[1]) for m in msgs]
            if len(out) >= expect:
                quiet_until = quiet_until or time.monotonic() + 0.5
                if not msgs and time.monotonic() > quiet_until:
                    break
        return out
    finally:
        c.close()


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_replay_file_into_topic_keys_timestamps_and_count(kafka_bootstrap: str, unique_name: str,
                                                           tmp_path: Path) -> None:
    topic = f"replay-in-{unique_name}"
    create_topic(kafka_bootstrap, topic, 3)
    lines = [event(i) for i in range(300)]
    lines[5] = event(5, ts="2023-11-14T22:13:20.050Z")     # RFC 3339: timestamp still ms
    lines[17] = b'{"event_id": "broken"'
    path = write_jsonl(tmp_path / "day.jsonl", lines)
    sink = TopicSink(kafka_bootstrap, topic)
    sink.check()
    stats = replay(JsonLinesSource(path), sink, ReplayOptions())
    assert (stats.produced, stats.invalid, stats.failed, stats.undelivered) == (299, 1, 0, 0)
    got = read_all(kafka_bootstrap, topic, 299)
    assert len(got) == 299
    sent = {v: i for i, v in enumerate(lines) if i != 17}
    for key, value, ts in got:
        i = sent[value]                                          # the original bytes
        assert key == f"acct-{i % 7}".encode()
        assert ts == T0 + i * 10


def test_cli_rewrite_time_now_and_paced(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    """--rewrite-time now: the first event is stamped with the send time, the rest keep their
    gaps; --speed 20 plays the 1.99 s recording in ~0.1 s."""
    topic = f"replay-now-{unique_name}"
    create_topic(kafka_bootstrap, topic, 2)
    path = write_jsonl(tmp_path / "day.jsonl", [event(i) for i in range(200)])
    before = int(time.time() * 1000)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["replay", str(path), "--broker", kafka_bootstrap,
                                       "--topic", topic, "--speed", "20", "--rewrite-time", "now"])
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert f"replayed 200 events into {topic}" in result.output
    assert took >= 1.99 / 20
    got = read_all(kafka_bootstrap, topic, 200)
    assert len(got) == 200
    stamps = sorted(ts for *_, ts in got)
    assert before <= stamps[0] <= before + 10_000
    assert [s - stamps[0] for s in stamps] == [i * 10 for i in range(200)]
    for _, value, ts in got:
        assert msgspec.json.decode(value)["ts"] == ts             # the JSON says the same


@pytest.fixture
def recorded_topic(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> str:
    """A 3-partition topic with 600 events, ts = T0 + 10 ms * i, written by the replay tool."""
    topic = f"replay-src-{unique_name}"
    create_topic(kafka_bootstrap, topic, 3)
    path = write_jsonl(tmp_path / "src.jsonl", [event(i) for i in range(600)])
    sink = TopicSink(kafka_bootstrap, topic)
    sink.check()
    assert replay(JsonLinesSource(path), sink).produced == 600
    return topic


def read_range(source: TopicSource) -> list[int]:
    values = [v for b in source.batches() for v in b.values]
    return [msgspec.json.decode(v)["ts"] for v in values]  # type: ignore[arg-type]


def test_topic_range_scan_path(kafka_bootstrap: str, recorded_topic: str) -> None:
    """Path: scan (binary search on record timestamps) - works on the embedded broker."""
    start, end = T0 + 1234, T0 + 4321
    src = TopicSource(kafka_bootstrap, recorded_topic, start_ms=start, end_ms=end, lookup="scan")
    stamps = read_range(src)
    assert stamps == [T0 + i * 10 for i in range(124, 433)]      # every one, in time order
    assert set(src.lookup_paths.values()) == {"scan"} and len(src.lookup_paths) == 3
    assert src.total == len(stamps)                                # nothing read outside the range


def test_topic_range_auto_path(kafka_bootstrap: str, recorded_topic: str) -> None:
    """Path: auto - the broker's offsets_for_times answer is checked against the records; the
    embedded broker answers 0 for any time, so it falls back to scan there."""
    src = TopicSource(kafka_bootstrap, recorded_topic, start_ms=T0 + 3000, end_ms=None, lookup="auto")
    assert read_range(src) == [T0 + i * 10 for i in range(300, 600)]
    assert set(src.lookup_paths.values()) == ({"broker"} if EXTERNAL else {"scan"})


@pytest.mark.skipif(not EXTERNAL, reason="offsets_for_times needs Apache Kafka: set KAFKA_BOOTSTRAP_SERVERS")
def test_topic_range_broker_path(kafka_bootstrap: str, recorded_topic: str) -> None:
    """Path: broker - offsets_for_times trusted as is (Apache Kafka only)."""
    src = TopicSource(kafka_bootstrap, recorded_topic, start_ms=T0 + 1000, end_ms=T0 + 2000,
                      lookup="broker")
    assert read_range(src) == [T0 + i * 10 for i in range(100, 200)]
    assert set(src.lookup_paths.values()) == {"broker"}


def test_cli_from_topic_scan_path_into_another_topic(kafka_bootstrap: str, recorded_topic: str,
                                                     unique_name: str) -> None:
    """Path: scan, through the command line, into a second topic."""
    target = f"replay-dst-{unique_name}"
    create_topic(kafka_bootstrap, target, 2)
    result = CliRunner().invoke(main, [
        "replay", "--from-topic", recorded_topic, "--broker", kafka_bootstrap, "--topic", target,
        "--start", "2023-11-14T22:13:21Z", "--end", str(T0 + 2000), "--offset-lookup", "scan"])
    assert result.exit_code == 0, result.output
    assert "offset lookup" in result.output and "scan" in result.output
    assert f"replayed 100 events into {target}" in result.output
    got = read_all(kafka_bootstrap, target, 100)
    assert sorted(ts for *_, ts in got) == [T0 + i * 10 for i in range(100, 200)]


def test_cli_from_a_missing_topic_is_a_clear_error_and_creates_nothing(kafka_bootstrap: str,
                                                                       unique_name: str) -> None:
    missing = f"replay-missing-{unique_name}"
    result = CliRunner().invoke(main, ["replay", "--from-topic", missing, "--broker", kafka_bootstrap,
                                       "--topic", f"replay-dst2-{unique_name}", "--dry-run"])
    assert result.exit_code == 1
    assert f"topic '{missing}' does not exist" in result.output and "Traceback" not in result.output
    assert missing not in AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
