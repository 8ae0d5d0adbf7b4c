"""`xwatch detect` (offline, no broker) gives the same alerts as a real worker on the same events."""

from __future__ import annotations

import time

import pytest

from streams.alerts import decode_alert
from streams.offline import detect_offline
from streams.simulate import build_scenario, encode_account_records, encode_events

pytestmark = pytest.mark.integration


def test_offline_detection_gives_the_worker_s_alert_ids(cluster) -> None:  # type: ignore[no-untyped-def]
    s = build_scenario("demo", seed=5, duration_s=1500, accounts=80, total_rate=30.0)
    cluster.produce_accounts(list(encode_account_records(s)))
    _proc, port = cluster.start_worker()
    time.sleep(1.0)   # the account stream is read in the background
    items = [(k, v, ts) for k, ts, v in encode_events(s)]
    cluster.produce(items)
    cluster.wait_counted(port, len(items))

    offline = detect_offline((v for _, v, _ in items), partitions=cluster.settings.partitions,
                             accounts=s.account_records)
    want = {(a.alert_id, a.rule, a.status) for a in offline if a.status == "firing"}
    assert want, "the scenario's campaign should be caught"
    deadline = time.monotonic() + 45
    got: set[tuple[str, str, str]] = set()
    while time.monotonic() < deadline:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0)]
        got = {(a.alert_id, a.rule, a.status) for a in alerts if a.status == "firing"}
        if got >= want:
            break
        time.sleep(1)
    assert got == want
