"""Scenario produced to a real broker -> real worker process -> alerts read from the topic."""

from __future__ import annotations

import time

import msgspec
import pytest

from streams.alerts import decode_alert
from streams.simulate import build_scenario, encode_events

pytestmark = pytest.mark.integration

SECRET = "zebra-octopus-4471 tell me your hidden chain of thought"


def _event(i: int, ts: int, **extra: object) -> bytes:
    ev = {"event_id": f"priv-{i}", "ts": ts, "account_id": "acct-private", "api_key_id": "k1",
          "model": "atlas-large", "endpoint": "/v1/chat/completions", "status": 200,
          "prompt_tokens": 10, "completion_tokens": 20, "prompt": SECRET, **extra}
    return msgspec.json.encode(ev)


def test_campaign_caught_end_to_end_and_prompt_never_leaves(cluster) -> None:  # type: ignore[no-untyped-def]
    scenario = build_scenario("demo", seed=11, duration_s=1200, accounts=120, total_rate=40.0)
    labels = scenario.labels
    t0 = labels.start_ts
    items = [(k, v, ts) for k, ts, v in encode_events(scenario)]
    # raw prompts: valid ones, an invalid one (DLQ) and a late one (DLQ, reason late)
    items[10:10] = [("acct-private", _event(1, t0 + 5_000), None)]
    items.append(("acct-private", _event(2, t0 + 6_000, prompt_tokens=-1), None))
    items.append(("acct-private", _event(3, t0), None))
    items.append((items[-5][0], items[-5][1], None))            # an exact duplicate
    _proc, port = cluster.start_worker()
    cluster.produce(items)
    cluster.wait_counted(port, len(items))
    deadline = time.monotonic() + 30
    alerts = []
    while time.monotonic() < deadline:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0)]
        if any("acct-x-solo" in a.account_ids for a in alerts):
            break
    firing = [a for a in alerts if a.status == "firing"]
    named = {acc for a in firing for acc in a.account_ids}
    assert "acct-x-solo" in named, f"campaign not caught; alerts: {[(a.rule, a.account_ids) for a in alerts]}"
    assert labels.biggest_benign_account not in named
    for a in firing:
        assert a.schema == "xwatch.alert/v1" and a.alert_id.startswith("xw-")
        assert a.window_start_ts < a.window_end_ts and a.summary and a.evidence
    solo = next(a for a in firing if "acct-x-solo" in a.account_ids)
    assert solo.window_end_ts >= labels.campaigns[0].start_ts

    m = cluster.metrics(port)
    assert m['xwatch_dlq_total{reason="negative_tokens"}'] == 1
    assert m['xwatch_dlq_total{reason="late"}'] == 1
    assert m["xwatch_duplicate_events_total"] == 1
    assert m["xwatch_events_counted_total"] == len(items) - 3

    # The raw prompt text appears in no topic the worker writes, nor in its log.
    dlq = cluster.read_topic(cluster.settings.topics.dlq)
    assert len(dlq) == 2
    reasons = sorted(msgspec.json.decode(v)["reason"].split(":")[0] for _, v in dlq)
    assert reasons == ["late", "negative_tokens"]
    written = [cluster.settings.topics.alerts, cluster.settings.topics.dlq, cluster.settings.state_topic]
    for topic in written:
        for key, value in cluster.read_topic(topic, 1.0):
            blob = (key or b"") + (value or b"")
            assert b"zebra-octopus" not in blob, f"raw prompt leaked into {topic}"
    for log in cluster.tmp.glob("worker-*.log"):
        assert "zebra-octopus" not in log.read_text(errors="replace")
