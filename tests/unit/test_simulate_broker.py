"""``xwatch simulate --broker``: every account record reaches the accounts topic (named by
``XWATCH_TOPIC_ACCOUNTS`` here; the command produces it first) and every event the request
topic. Needs the session broker (embedded Tansu unless KAFKA_BOOTSTRAP_SERVERS is set),
hence the integration mark."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.cli import main
from streams.records import AccountRecord
from streams.simulate import build_scenario

pytestmark = pytest.mark.integration


def consume_all(bootstrap: str, topic: str, quiet_s: float = 3.0,
                timeout_s: float = 60.0) -> list[tuple[bytes, bytes, int]]:
    """Every (key, value, timestamp) on ``topic``, read until it stays quiet (no reliance on
    high watermarks, which the embedded broker reports short)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{topic}",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[tuple[bytes, bytes, int]] = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
            for m in c.consume(1000, 0.5):
                if m.error() is not None:
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    continue
                out.append((m.key(), m.value(), m.timestamp()[1]))
                last = time.monotonic()
        return out
    finally:
        c.close()


def test_simulate_produces_accounts_then_events(kafka_bootstrap: str, unique_name: str,
                                                tmp_path: Path) -> None:
    requests, accounts = f"sim-req-{unique_name}", f"sim-acc-{unique_name}"
    args = ["simulate", "--scenario", "hydra_cluster", "--duration", "240", "--accounts", "6",
            "--rate", "1", "--seed", "4", "--start", "1767225600000", "--broker", kafka_bootstrap,
            "--topic", requests, "--labels", str(tmp_path / "hydra.labels.json")]
    result = CliRunner().invoke(main, args, env={"XWATCH_TOPIC_ACCOUNTS": accounts},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected = build_scenario("hydra_cluster", seed=4, start_ts=1_767_225_600_000,
                              duration_s=240, accounts=6, total_rate=1.0)

    records = consume_all(kafka_bootstrap, accounts)
    dec = msgspec.json.Decoder(AccountRecord)
    got = {k.decode(): dec.decode(v) for k, v, _ in records}
    assert len(records) == len(expected.account_records)
    assert got == {r.account_id: r for r in expected.account_records}

    events = consume_all(kafka_bootstrap, requests)
    assert len(events) == expected.labels.events
    assert {k.decode() for k, _, _ in events} <= set(got)
