"""The broker hangs (SIGSTOP ... SIGCONT) under a running worker: the worker keeps running,
says so once when Kafka goes away and once when it is back (not a line per retry), and
catches up by itself. A private embedded broker, so the session's broker is not frozen.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker
from streams.simulate import build_scenario, encode_events

pytestmark = pytest.mark.integration

HANG_S = float(os.environ.get("XWATCH_TEST_HANG_S", "20"))   # the 60 s: set it


def test_worker_survives_a_hung_broker_and_catches_up(worker_cluster_type, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      unique_name: str) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    cluster = worker_cluster_type(broker.start(), unique_name, tmp_path)
    try:
        cluster.create_topics()
        scenario = build_scenario("demo", seed=8, duration_s=900, accounts=60, total_rate=10.0)
        items = [(k, v, None) for k, _, v in encode_events(scenario)]
        half = len(items) // 2
        proc, port = cluster.start_worker(XWATCH_SNAPSHOT_INTERVAL_S="2")
        cluster.produce(items[:half])
        cluster.wait_counted(port, half)
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            time.sleep(HANG_S)
            assert proc.poll() is None, "the worker died while the broker hung"
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        cluster.produce(items[half:])
        m = cluster.wait_counted(port, len(items), timeout_s=120)
        assert proc.poll() is None
        assert m["xwatch_events_counted_total"] == len(items)        # none lost, none twice
        log = (tmp_path / f"worker-{unique_name}-0.log").read_text()
        assert "Traceback" not in log
        # a line per state change (gone, back, partitions lost and taken again), not one per
        # retry per client: no raw librdkafka lines, a handful of warnings in all
        assert log.count("%3|") + log.count("%4|") + log.count("%6|") == 0, log[-3000:]
        assert log.count("Kafka unreachable") <= 1 and log.count("lost partitions") <= 1, log[-3000:]
        assert log.count("WARNING") <= 12, log[-3000:]         # 60 s: ~10 (Faust timers too)
        assert "processing it carefully" not in log      # a lost partition is not a crash
    finally:
        cluster.stop_all()
        broker.stop()
