"""The cross-account view survives a crash: a cluster whose summaries arrived before the
worker was killed is still named after a new worker takes the summaries partition over.

Summaries go straight to the coordination topic (as partition monitors write them). The
first worker reads them and saves its state; we wait until Faust has committed their
offsets too, so a new worker would never read them again, then SIGKILL it. Only the saved
state can bring the open window back."""

from __future__ import annotations

import signal
import time

import msgspec
import pytest
from confluent_kafka import Producer

from models.coordination import AccountSummary
from streams.alerts import decode_alert

pytestmark = pytest.mark.integration

W0 = 1_767_225_600_000
WINDOW_MS = 60_000
HYDRA = [f"hydra-{i:02d}" for i in range(12)]


def summary(account: str, start: int, net: int = 77, ua: int = 99,
            template_fp: int = 0xABCD_0000_1234_0000) -> bytes:
    s = AccountSummary(account, start, start + WINDOW_MS, requests=6, extraction_score=0.8,
                       template_fp=template_fp, net=net, ua=ua, asn=64_500)
    return msgspec.msgpack.encode(s.to_dict())


def send(broker: str, topic: str, items: list[tuple[str, bytes]]) -> None:
    p = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    for key, value in items:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0


def test_open_window_of_summaries_survives_sigkill(cluster) -> None:  # type: ignore[no-untyped-def]
    s = cluster.settings
    env = {"XWATCH_IDLE_PARTITION_S": "60"}   # no quiet flush while the test runs
    first, _ = cluster.start_worker(**env)
    send(cluster.broker, s.coordination_topic, [(a, summary(a, W0)) for a in HYDRA])

    # the first worker has read them and saved its state ...
    manifest_key = f"{s.coordination_topic}/0".encode()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(k == manifest_key for k, _ in cluster.read_topic(s.state_topic, 0.5)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the cross-account view never saved its state")
    time.sleep(6.0)   # ... and Faust has committed the summaries' offsets (every 2.8 s)
    assert not any(a.rule == "coordinated_accounts" for a in
                   (decode_alert(v) for _, v in cluster.read_topic(s.topics.alerts, 0.5)))
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    cluster.start_worker(**env)
    # a summary three windows later lets the first window close
    later = W0 + 3 * WINDOW_MS
    send(cluster.broker, s.coordination_topic,
         [("bystander", summary("bystander", later, net=1, ua=2, template_fp=3))])
    deadline = time.monotonic() + 60
    named: set[str] = set()
    while time.monotonic() < deadline and not named:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(s.topics.alerts, 1.0)]
        named = {a for al in alerts if al.rule == "coordinated_accounts" and al.status == "firing"
                 for a in al.account_ids}
        if not named:
            # keep the stream moving, as live monitors would
            send(cluster.broker, s.coordination_topic,
                 [("bystander", summary("bystander", later, net=1, ua=2, template_fp=3))])
            time.sleep(2)
    assert named == set(HYDRA)
