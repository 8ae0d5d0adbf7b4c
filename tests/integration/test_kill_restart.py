"""At-least-once with deterministic ids, proven: the worker is killed with SIGKILL ten times
at random moments while it works through a stream, restarted each time, and in the end
the set of firing ``alert_id``s equals that of an undisturbed run on the same stream, and
the per-account state (windows seen, first seen, last window) is exactly the same.

Alert consumers see some alerts more than once (those emitted after the last snapshot
before a kill are emitted again, with the same ``alert_id``) and deduplicate on
``alert_id`` + ``status``, as the contract says.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from streams.alerts import decode_alert
from streams.simulate import build_scenario, encode_events
from streams.state_store import SnapshotStore

pytestmark = pytest.mark.integration

KILLS = 10
SLOW = {"XWATCH_BATCH_MAX": "100", "XWATCH_SNAPSHOT_INTERVAL_S": "1"}   # kills land mid-stream


def _snapshots(cluster):  # type: ignore[no-untyped-def]
    s = cluster.settings
    return SnapshotStore(s.connection, s.state_topic, s.topics.requests).load([0, 1])


def _settle_and_stop(cluster, proc, total: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the saved state covers every message, let idle partitions close their
    windows, then stop with SIGTERM (a final snapshot)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if sum(s.next_offset for s in _snapshots(cluster).values()) >= total:
            break
        time.sleep(1.0)
    else:
        raise AssertionError("the worker did not get through the stream")
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def _outcome(cluster) -> tuple[set[str], dict[str, tuple[int, ...]], dict[str, int]]:  # type: ignore[no-untyped-def]
    alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 2.0)]
    firing = {a.alert_id for a in alerts if a.status == "firing"}
    snaps = _snapshots(cluster)
    assert sorted(snaps) == [0, 1]
    per_account: dict[str, tuple[int, ...]] = {}
    counters = {"events": 0, "duplicates": 0, "late": 0}
    for snap in snaps.values():
        acc = snap.state["accounts"]
        n = len(acc["ids"])
        cols = [np.frombuffer(acc[c], dtype=d)[:n].tolist() for c, d in
                (("windows_seen", np.int32), ("first_seen_ts", np.int64), ("last_window_end", np.int64))]
        per_account.update({a: (w, f, e) for a, w, f, e in zip(acc["ids"], *cols, strict=True)})
        for k in counters:
            counters[k] += snap.state["counters"][k]
    return firing, per_account, counters


def test_ten_sigkills_change_no_alert_and_no_count(worker_cluster_type, kafka_bootstrap: str,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path, unique_name: str) -> None:
    scenario = build_scenario("demo", seed=21, duration_s=1200, accounts=120, total_rate=30.0)
    items = [(k, v, ts) for k, ts, v in encode_events(scenario)]
    total = len(items)

    calm = worker_cluster_type(kafka_bootstrap, f"{unique_name}c", tmp_path / "calm")
    rough = worker_cluster_type(kafka_bootstrap, f"{unique_name}r", tmp_path / "rough")
    (tmp_path / "calm").mkdir()
    (tmp_path / "rough").mkdir()
    try:
        for c in (calm, rough):
            c.create_topics()
        proc, _ = calm.start_worker(**SLOW)
        calm.produce(items)
        _settle_and_stop(calm, proc, total)

        # the replay arrives in as many parts as the worker has lives; each life starts
        # with its part waiting and is killed at a random moment
        rng = random.Random(11)
        step = -(-total // KILLS)
        progress = []
        for life in range(KILLS):
            rough.produce(items[life * step:(life + 1) * step])
            proc, port = rough.start_worker(**SLOW)
            deadline = time.monotonic() + 30      # once it is at work, at a random moment
            while time.monotonic() < deadline and not rough.metrics(port)["xwatch_messages_in_total"]:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            saved = sum(s.next_offset for s in _snapshots(rough).values())
            progress.append((saved, min((life + 1) * step, total)))
        proc, _ = rough.start_worker(**SLOW)
        _settle_and_stop(rough, proc, total)
        # most kills fell while there was work the saved state did not cover yet
        assert sum(saved < produced for saved, produced in progress) >= KILLS // 2, progress

        calm_ids, calm_accounts, calm_counts = _outcome(calm)
        rough_ids, rough_accounts, rough_counts = _outcome(rough)
        assert calm_ids, "the undisturbed run raised no alert: nothing to compare"
        assert rough_ids == calm_ids, (sorted(calm_ids - rough_ids), sorted(rough_ids - calm_ids))
        assert calm_counts == {"events": total, "duplicates": 0, "late": 0}
        assert rough_counts == calm_counts
        assert rough_accounts == calm_accounts
    finally:
        calm.stop_all()
        rough.stop_all()
