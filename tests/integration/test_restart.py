"""Stop the worker mid-stream (SIGTERM, then SIGKILL), restart it: nothing counted twice,
the campaign still caught. Counts are read from the state the worker saved on Kafka."""

from __future__ import annotations

import random
import signal
import time

import pytest

from streams.alerts import decode_alert
from streams.simulate import build_scenario, encode_events
from streams.state_store import SnapshotStore

pytestmark = pytest.mark.integration


def test_restart_after_sigterm_and_sigkill_counts_each_event_once(cluster) -> None:  # type: ignore[no-untyped-def]
    scenario = build_scenario("demo", seed=5, duration_s=1200, accounts=100, total_rate=40.0)
    items = [(k, v, ts) for k, ts, v in encode_events(scenario)]
    unique = len(items)
    rng = random.Random(3)
    for i in sorted(rng.sample(range(len(items)), 40), reverse=True):   # retransmissions
        items.insert(min(i + 25, len(items)), items[i])
    third = len(items) // 3
    parts = [items[:third], items[third:2 * third], items[2 * third:]]

    proc_a, port_a = cluster.start_worker()
    cluster.produce(parts[0])
    cluster.wait_counted(port_a, len(parts[0]))
    proc_a.send_signal(signal.SIGTERM)
    assert proc_a.wait(30) == 0, "worker did not shut down cleanly on SIGTERM"

    proc_b, port_b = cluster.start_worker()
    assert cluster.metrics(port_b)["xwatch_restores_total"] >= 1, "SIGTERM left no snapshot"
    cluster.produce(parts[1])
    cluster.wait_counted(port_b, len(parts[1]) // 2)
    time.sleep(rng.uniform(0.0, 2.0))
    proc_b.send_signal(signal.SIGKILL)
    proc_b.wait(10)

    proc_c, port_c = cluster.start_worker()
    cluster.produce(parts[2])
    deadline = time.monotonic() + 60
    named: set[str] = set()
    while time.monotonic() < deadline and "acct-x-solo" not in named:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0)]
        named = {acc for a in alerts if a.status == "firing" for acc in a.account_ids}
    assert "acct-x-solo" in named, "campaign not caught across restarts"
    assert scenario.labels.biggest_benign_account not in named
    time.sleep(3)   # let the idle flush settle before the final snapshot
    proc_c.send_signal(signal.SIGTERM)
    assert proc_c.wait(30) == 0

    s = cluster.settings
    snapshots = SnapshotStore(s.broker, s.state_topic, s.topics.requests).load([0, 1])
    assert sorted(snapshots) == [0, 1]
    counted = sum(snap.state["counters"]["events"] for snap in snapshots.values())
    duplicates = sum(snap.state["counters"]["duplicates"] for snap in snapshots.values())
    late = sum(snap.state["counters"]["late"] for snap in snapshots.values())
    assert (counted, duplicates, late) == (unique, len(items) - unique, 0)
    assert sum(snap.next_offset for snap in snapshots.values()) == len(items)
