"""Backtest mode against a real broker.

The first test stands in for the worker (a thread that commits offsets for the detector
group and writes one alert) to check the plumbing: replay, wait on committed offsets against
true partition ends, quiet period, alerts read only from where the alert topic ended, scored
by ``streams.evaluate``. The second runs the real worker process.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from streams.alerts import Alert, encode_alert
from streams.labels import CampaignLabel, ScenarioLabels, write_labels
from streams.replay.backtest import run_backtest
from streams.replay.jsonl import JsonLinesSource
from streams.settings import Settings, Topics

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def alert(alert_id: str, account: str, ts: int) -> Alert:
    return Alert(alert_id=alert_id, status="firing", rule="volume_spike", severity="warning",
                 account_ids=[account], score=9.0, threshold=3.0, window_start_ts=ts - 60_000,
                 window_end_ts=ts, detected_at=int(time.time() * 1000), summary="test alert",
                 evidence={})


class FakeWorker(threading.Thread):
    """Reads the requests topic, commits its position for ``<app_id>-detector`` every 0.2 s,
    and raises one alert on ``acct-1`` once it has seen ``alert_after`` events."""

    def __init__(self, settings: Settings, alert_after: int) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.alert_after = alert_after
        self.stop = threading.Event()
        self.seen = 0

    def run(self) -> None:
        s = self.settings
        c = Consumer({"bootstrap.servers": s.broker, "group.id": s.group_id,
                      "enable.auto.commit": False, "session.timeout.ms": 6000,
                      "enable.partition.eof": False, "fetch.wait.max.ms": 10})
        p = Producer({"bootstrap.servers": s.broker, "linger.ms": 50})
        parts = c.list_topics(s.topics.requests, timeout=10).topics[s.topics.requests].partitions
        c.assign([TopicPartition(s.topics.requests, q, OFFSET_BEGINNING) for q in parts])
        nxt: dict[int, int] = {}
        alerted = False
        last_commit = time.monotonic()
        try:
            while not self.stop.is_set():
                for m in c.consume(1000, 0.1):
                    if m.error() is None:
                        self.seen += 1
                        nxt[m.partition()] = m.offset() + 1
                if not alerted and self.seen >= self.alert_after:
                    a = alert("bt-1", "acct-1", T0 + 3000)
                    p.produce(s.topics.alerts, encode_alert(a), a.key)
                    p.flush(10)
                    alerted = True
                if nxt and time.monotonic() - last_commit > 0.2:
                    c.commit(offsets=[TopicPartition(s.topics.requests, q, o) for q, o in nxt.items()],
                             asynchronous=False)
                    last_commit = time.monotonic()
        finally:
            c.close()


def test_backtest_waits_for_the_group_then_scores_only_new_alerts(
        kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    u = unique_name
    settings = Settings.from_env({}, broker=kafka_bootstrap, app_id=f"bt-{u}", partitions=2,
                                 topics=Topics(requests=f"bt-req-{u}", alerts=f"bt-alerts-{u}"))
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for topic in (settings.topics.requests, settings.topics.alerts):
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=15)
    # an alert from an earlier run: must not be scored
    old = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    old.produce(settings.topics.alerts, encode_alert(alert("old-1", "acct-2", T0)), b"acct-2")
    assert old.flush(10) == 0

    n = 400
    events = [msgspec.json.encode({
        "event_id": f"e{i}", "ts": T0 + i * 10, "account_id": f"acct-{i % 5}", "api_key_id": "k",
        "model": "m", "endpoint": "/v1/x", "status": 200, "prompt_tokens": 1,
        "completion_tokens": 2}) for i in range(n)]
    path = tmp_path / "bt.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    labels = ScenarioLabels(
        scenario="t", seed=1, start_ts=T0, end_ts=T0 + n * 10, events=n,
        benign_accounts=["acct-0", "acct-2", "acct-3", "acct-4"],
        campaigns=[CampaignLabel(name="solo", kind="solo_extraction", accounts=["acct-1"],
                                 start_ts=T0, end_ts=T0 + n * 10)])
    labels_path = tmp_path / "bt.labels.json"
    write_labels(labels, labels_path)

    worker = FakeWorker(settings, alert_after=n)
    worker.start()
    out = io.StringIO()
    try:
        result = run_backtest(settings, JsonLinesSource(path), labels_path,
                              console=Console(file=out, width=140), quiet_s=1.0, timeout_s=30,
                              show_progress=False)
    finally:
        worker.stop.set()
        worker.join(10)
    assert result.stats.produced == n
    assert sum(result.end_offsets.values()) == n          # true ends, not the short watermark
    assert [a.alert_id for a in result.alerts] == ["bt-1"]
    assert [c.caught for c in result.scorecard.attacks] == [True]
    text = out.getvalue()
    assert "worker caught up" in text and "solo" in text and "precision 1.00" in text


def test_backtest_with_the_real_worker(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """End to end, ~20 s: worker start-up (~10 s) and its commit interval dominate."""
    try:
        from streams.app import create_app  # noqa: F401
    except ImportError:
        pytest.skip("needs worker")
    from streams.labels import write_labels as save_labels
    from streams.simulate import build_scenario, write_jsonl

    scenario = build_scenario("demo", seed=11, duration_s=1200, accounts=120, total_rate=40.0)
    events = tmp_path / "demo.jsonl"
    write_jsonl(scenario, events)
    labels_path = tmp_path / "demo.labels.json"
    save_labels(scenario.labels, labels_path)
    cluster.start_worker()          # ~10 s: a Faust worker process joining its group
    out = io.StringIO()
    result = run_backtest(cluster.settings, JsonLinesSource(events), labels_path,
                          console=Console(file=out, width=140), quiet_s=3.0, timeout_s=90,
                          show_progress=False)
    assert result.stats.produced == scenario.labels.events
    named = {acc for a in result.alerts if a.status == "firing" for acc in a.account_ids}
    assert "acct-x-solo" in named, out.getvalue()
    assert "worker caught up" in out.getvalue()


