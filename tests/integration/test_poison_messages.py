"""Inputs that used to stop or lose detection (issue 14), on the real broker and worker.

* Each message of the issue's table, in the campaign's own partition and batch: the worker
  stays up, the message is in the DLQ with its reason, and the campaign is still caught.
* An account record that used to crash the monitor when the account's window closed.
* A message that kills the worker process outright (``faulty_worker.py crash``) is
  dead-lettered after a few restarts instead of crash-looping the partition forever.
* A 10 s pause in the producer: no event goes to the DLQ as late, same alert ids.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from confluent_kafka import Producer

from streams.alerts import decode_alert
from streams.broker import die_with_parent, free_port
from streams.simulate import build_scenario, encode_events

if TYPE_CHECKING:
    from conftest import WorkerCluster

pytestmark = pytest.mark.integration

CAMPAIGN = "acct-x-solo"
REPO = Path(__file__).resolve().parents[2]


def _nested(depth: int) -> str:
    text = "1"
    for i in range(depth):
        text = f'{{"a":{text}}}' if i % 2 else f"[{text}]"
    return text


def _event(event_id: str, ts: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "ts": ts, "account_id": CAMPAIGN, "api_key_id": "k-poison",
            "model": "atlas-reason", "endpoint": "/v1/chat/completions", "status": 200,
            "prompt_tokens": 100, "completion_tokens": 900, **fields}


def _raw(ev: dict[str, Any], extra_field: str | None = None, extra: str = "") -> bytes:
    body = msgspec.json.encode(ev)
    return body[:-1] + f',"{extra_field}":{extra}}}'.encode() if extra_field else body


# (row id, how to build the message at event time ts, the DLQ code expected)
ROWS = [
    ("prompt_tokens_2_63", lambda ts: _raw(_event("p-1", ts, prompt_tokens=2**63)), "out_of_range"),
    ("completion_tokens_2_64_plus_1",
     lambda ts: _raw(_event("p-2", ts, completion_tokens=2**64 + 1)), "out_of_range"),
    ("reasoning_tokens_2_63", lambda ts: _raw(_event("p-3", ts, reasoning_tokens=2**63)), "out_of_range"),
    ("asn_2_64", lambda ts: _raw(_event("p-4", ts, asn=2**64)), "out_of_range"),
    ("known_field_nested_1200", lambda ts: _raw(_event("p-5", ts), "ip", _nested(1200)), "too_deep"),
    ("unknown_field_nested_5000", lambda ts: _raw(_event("p-6", ts), "x_extra", _nested(5000)),
     "too_deep"),
]


def _named(cluster: WorkerCluster, account: str, timeout_s: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    alerts: list[Any] = []
    while time.monotonic() < deadline:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0) if v]
        if any(account in a.account_ids and a.status == "firing" for a in alerts):
            break
    return alerts


@pytest.fixture(scope="module")
def poisoned(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
             worker_cluster_type: type[WorkerCluster]) -> Iterator[dict[str, Any]]:
    """One worker, one stream: a campaign with every poison message inside its traffic."""
    import uuid

    c = worker_cluster_type(kafka_bootstrap, uuid.uuid4().hex[:8], tmp_path_factory.mktemp("poison"))
    c.create_topics()
    try:
        scenario = build_scenario("demo", seed=11, duration_s=1200, accounts=80, total_rate=30.0)
        items: list[tuple[str | bytes | None, bytes, int | None]] = [
            (k, v, None) for k, _, v in encode_events(scenario)]
        start = scenario.labels.campaigns[0].start_ts
        at = next(i for i, (_, ts, _) in enumerate(encode_events(scenario)) if ts > start + 90_000)
        for j, (_, build, _) in enumerate(ROWS):
            items.insert(at + 3 * j, (CAMPAIGN, build(start + 90_000 + j), None))
        # an account record whose created_ts overflowed the monitor at window close
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        p.produce(c.settings.topics.accounts, key=CAMPAIGN,
                  value=msgspec.json.encode({"account_id": CAMPAIGN, "created_ts": 2**64}))
        assert p.flush(10) == 0
        proc, port = c.start_worker()
        c.produce(items)
        c.wait_counted(port, len(items))
        alerts = _named(c, CAMPAIGN)
        dlq = {msgspec.json.decode(v)["raw"][:200]: msgspec.json.decode(v)["reason"]
               for _, v in c.read_topic(c.settings.topics.dlq) if v}
        yield {"cluster": c, "proc": proc, "port": port, "alerts": alerts, "dlq": dlq,
               "scenario": scenario, "metrics": c.metrics(port)}
    finally:
        c.stop_all()


@pytest.mark.parametrize(("row", "code"), [(r, code) for r, _, code in ROWS], ids=[r for r, _, _ in ROWS])
def test_poison_message_goes_to_the_dlq_and_the_worker_stays_up(poisoned: dict[str, Any], row: str,
                                                               code: str) -> None:
    event_id = f'"p-{[r for r, _, _ in ROWS].index(row) + 1}"'
    reasons = [reason for raw, reason in poisoned["dlq"].items() if f'"event_id":{event_id}' in raw]
    assert len(reasons) == 1, f"{row}: DLQ entries {reasons}"
    assert reasons[0].split(":", 1)[0] == code, reasons[0]
    assert poisoned["proc"].poll() is None, "the worker died"
    m = poisoned["cluster"].metrics(poisoned["port"])
    assert m['xwatch_internal_errors_total{input="requests"}'] == 0


def test_the_campaign_in_the_same_stream_is_still_caught(poisoned: dict[str, Any]) -> None:
    firing = [a for a in poisoned["alerts"] if a.status == "firing"]
    named = {acc for a in firing for acc in a.account_ids}
    assert CAMPAIGN in named, [(a.rule, a.account_ids) for a in firing]
    assert poisoned["scenario"].labels.biggest_benign_account not in named
    m = poisoned["metrics"]
    assert m["xwatch_events_counted_total"] == poisoned["scenario"].labels.events


def test_an_account_record_out_of_range_is_skipped(poisoned: dict[str, Any]) -> None:
    m = poisoned["cluster"].metrics(poisoned["port"])
    assert m['xwatch_account_records_rejected_total{reason="out_of_range"}'] == 1
    assert poisoned["proc"].poll() is None


# -- a message that kills the process ---------------------------------------------------------

def _start_crashing_worker(c: WorkerCluster, life: int) -> subprocess.Popen[bytes]:
    import os

    env = {**os.environ, **c.env, "XWATCH_BROKER": c.broker, "XWATCH_WEB_PORT": str(free_port()),
           "XWATCH_SESSION_TIMEOUT_S": "6", "XWATCH_IDLE_PARTITION_S": "2",
           "XWATCH_SNAPSHOT_INTERVAL_S": "2", "XWATCH_BATCH_MAX": "40"}
    log = open(c.tmp / f"crashing-{life}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, str(REPO / "tests/integration/faulty_worker.py"), "crash",
                             "worker", "--log-level", "warn"], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)


def test_a_message_that_kills_the_worker_is_dead_lettered_after_a_few_crashes(
        cluster: WorkerCluster) -> None:
    scenario = build_scenario("demo", seed=4, duration_s=900, accounts=20, total_rate=4.0)
    items: list[tuple[str | bytes | None, bytes, int | None]] = [
        (k, v, None) for k, _, v in encode_events(scenario)]
    start = scenario.labels.campaigns[0].start_ts
    at = next(i for i, (_, ts, _) in enumerate(encode_events(scenario)) if ts > start + 60_000)
    killer = _raw(_event("killer-1", start + 60_000, lang="KILLS-THE-WORKER"))
    items.insert(at, (CAMPAIGN, killer, None))
    cluster.produce(items)
    crashes = 0
    dlq: list[dict[str, Any]] = []
    proc = None
    for life in range(1, 8):
        proc = _start_crashing_worker(cluster, life)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            dlq = [msgspec.json.decode(v) for _, v in cluster.read_topic(cluster.settings.topics.dlq, 0.5) if v]
            if any("killer-1" in d["raw"] for d in dlq):
                break
        if proc.poll() is None:
            break
        assert proc.returncode == 99, (cluster.tmp / f"crashing-{life}.log").read_text()[-2000:]
        crashes += 1
    assert proc is not None and proc.poll() is None, "the worker is still crash-looping"
    [entry] = [d for d in dlq if "killer-1" in d["raw"]]
    assert entry["reason"].startswith("internal_error: the worker crashed 3 times")
    assert 3 <= crashes <= 5
    alerts = _named(cluster, CAMPAIGN)
    assert any(CAMPAIGN in a.account_ids for a in alerts if a.status == "firing")
    proc.terminate()
    proc.wait(30)


# -- a pause in the input ---------------------------------------------------------------------

def test_a_pause_in_the_input_drops_nothing_as_late_and_keeps_the_alert_ids(
        cluster: WorkerCluster, kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    scenario = build_scenario("demo", seed=21, duration_s=900, accounts=30, total_rate=10.0)
    items: list[tuple[str | bytes | None, bytes, int | None]] = [
        (k, v, None) for k, _, v in encode_events(scenario)]
    start = scenario.labels.campaigns[0].start_ts
    # pause 40 s into the campaign: its first windows are still open when the input stops
    cut = next(i for i, (_, ts, _) in enumerate(encode_events(scenario)) if ts > start + 40_000)
    steady = type(cluster)(kafka_bootstrap, f"{unique_name}np", tmp_path)
    steady.create_topics()
    try:
        (_, port_p), (_, port_s) = cluster.start_worker(), steady.start_worker()
        steady.produce(items)
        cluster.produce(items[:cut])
        cluster.wait_counted(port_p, cut)

        def firing_now() -> set[str]:
            return {a.alert_id for _, v in cluster.read_topic(cluster.settings.topics.alerts, 0.5)
                    if v for a in [decode_alert(v)] if a.status == "firing"}

        before = firing_now()
        time.sleep(10)                                  # the producer pauses for 10 s
        early = firing_now() - before                   # sent by the quiet-input preview
        cluster.produce(items[cut:])
        for c, port in ((cluster, port_p), (steady, port_s)):
            c.wait_counted(port, len(items))
        time.sleep(6)                                   # the quiet-input previews settle
        paused = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts) if v]
        plain = [decode_alert(v) for _, v in steady.read_topic(steady.settings.topics.alerts) if v]
        m = cluster.metrics(port_p)
    finally:
        steady.stop_all()
    assert m.get('xwatch_dlq_total{reason="late"}', 0) == 0
    assert m["xwatch_late_events_total"] == 0
    assert m["xwatch_events_counted_total"] == len(items)
    firing = {a.alert_id for a in plain if a.status == "firing"}
    assert any(CAMPAIGN in a.account_ids for a in plain), "nothing to compare: campaign not caught"
    assert {a.alert_id for a in paused if a.status == "firing"} == firing
    assert {(a.alert_id, a.status) for a in paused} == {(a.alert_id, a.status) for a in plain}
    assert early, "the pause sent no alert early: the quiet-input path was not exercised"
