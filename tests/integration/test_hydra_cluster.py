"""The cross-account view on a real broker: a hydra cluster (many modest fresh accounts
sharing payment methods, networks and templates) is named in one coordinated_accounts
alert by the worker's Faust agent."""

from __future__ import annotations

import time

import pytest

from streams.alerts import decode_alert
from streams.simulate import build_scenario, encode_account_records, encode_events

pytestmark = pytest.mark.integration


def test_hydra_cluster_named_by_the_coordination_agent(cluster) -> None:  # type: ignore[no-untyped-def]
    s = build_scenario("hydra_cluster", seed=4, duration_s=1800, accounts=60, total_rate=20.0)
    hydra = next(c for c in s.labels.campaigns if c.kind == "hydra_cluster")
    cluster.produce_accounts(list(encode_account_records(s)))
    _proc, port = cluster.start_worker()
    time.sleep(1.0)   # the account stream is read in the background
    items = [(k, v, ts) for k, ts, v in encode_events(s)]
    cluster.produce(items)
    cluster.wait_counted(port, len(items))
    deadline = time.monotonic() + 40
    named: set[str] = set()
    alerts = []
    while time.monotonic() < deadline:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0)]
        named = {a for al in alerts if al.rule == "coordinated_accounts" and al.status == "firing"
                 for a in al.account_ids}
        if len(named & set(hydra.accounts)) >= 0.9 * len(hydra.accounts):
            break
        time.sleep(1)
    assert len(named & set(hydra.accounts)) >= 0.9 * len(hydra.accounts), \
        f"named {len(named & set(hydra.accounts))}/{len(hydra.accounts)}: {[(a.rule, len(a.account_ids)) for a in alerts]}"
    assert not named - set(hydra.accounts), "coordinated_accounts named honest accounts"
    cluster_alerts = [a for a in alerts if a.rule == "coordinated_accounts"]
    assert len({a.alert_id for a in cluster_alerts}) == 1          # one incident, one id
    assert all(a.evidence["cluster_id"] for a in cluster_alerts)
