"""Rebalances that don't stop the world, and a liveness probe that sees a hung engine.

* cooperative-sticky assignment: a second worker joining takes partitions from the first
  without the first giving up (snapshotting, restoring) the ones it keeps;
* static membership: a worker killed and restarted with the same instance id within the
  session timeout gets its partitions back and the other worker sees no rebalance;
* ``/health`` turns 503 ("stalled") when the engine loop stops going round.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.broker import die_with_parent, free_port
from streams.simulate import build_scenario, encode_events

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _wait(cond, timeout_s: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _traffic(seed: int) -> list[tuple[str | bytes | None, bytes, int | None]]:
    scenario = build_scenario("demo", seed=seed, duration_s=300, accounts=40, total_rate=10.0)
    return [(k, v, None) for k, _, v in encode_events(scenario)]


def _two_workers(cluster, **ids: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Worker a alone on both partitions, then worker b joining; their web ports."""
    _a, port_a = cluster.start_worker(**({"XWATCH_INSTANCE_ID": ids["a"]} if ids else {}))
    _wait(lambda: cluster.metrics(port_a)["xwatch_assigned_partitions"] == 2, what="worker a owns both")
    cluster.produce(_traffic(3))
    _b, port_b = cluster.start_worker(**({"XWATCH_INSTANCE_ID": ids["b"]} if ids else {}))
    _wait(lambda: cluster.metrics(port_b)["xwatch_assigned_partitions"] == 1, what="worker b takes one")
    _wait(lambda: cluster.metrics(port_a)["xwatch_assigned_partitions"] == 1, what="worker a gives one")
    return port_a, port_b


def test_a_joining_worker_moves_only_the_partitions_it_takes(cluster) -> None:  # type: ignore[no-untyped-def]
    port_a, port_b = _two_workers(cluster)
    a = cluster.metrics(port_a)
    # eager assignment would revoke both and assign one back (revoked 2, assigned 3)
    assert a["xwatch_partitions_revoked_total"] == 1
    assert a["xwatch_partitions_assigned_total"] == 2
    assert cluster.metrics(port_b)["xwatch_partitions_assigned_total"] == 1

    def seen() -> float:
        return sum(cluster.metrics(p)["xwatch_messages_in_total"] for p in (port_a, port_b))
    before = seen()
    items = _traffic(5)
    cluster.produce(items)
    _wait(lambda: seen() >= before + len(items), what="the new traffic read by the two")


@pytest.mark.skipif(not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
                    reason="static membership needs Apache Kafka (KAFKA_BOOTSTRAP_SERVERS): the "
                           "embedded Tansu broker never completes a rebalance for static members")
def test_a_restarted_static_member_gets_its_partition_back_without_a_rebalance(  # type: ignore[no-untyped-def]
        cluster) -> None:
    port_a, port_b = _two_workers(cluster, a=f"a-{cluster.name}", b=f"b-{cluster.name}")
    proc_b, _ = cluster.procs[-1]
    proc_b.send_signal(signal.SIGKILL)
    proc_b.wait()
    _b2, port_b2 = cluster.start_worker(XWATCH_INSTANCE_ID=f"b-{cluster.name}")
    _wait(lambda: cluster.metrics(port_b2)["xwatch_assigned_partitions"] == 1, what="b back")
    time.sleep(8)          # past the session timeout (6 s): a rebalance would have happened
    a = cluster.metrics(port_a)
    assert (a["xwatch_partitions_revoked_total"], a["xwatch_partitions_assigned_total"]) == (1, 2)


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_hung_engine_loop_fails_health(cluster) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, **cluster.env, "XWATCH_BROKER": str(cluster.broker), "XWATCH_WEB_PORT": str(port),
           "XWATCH_SESSION_TIMEOUT_S": "6", "XWATCH_HEALTH_STALL_S": "3"}
    log = open(cluster.tmp / "hanging.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/integration/faulty_worker.py"), "hang", "worker",
                             "--log-level", "warn"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    cluster.procs.append((proc, port))
    _wait(lambda: _health(port)[0] == 200 if _port_open(port) else False, what="healthy")
    time.sleep(4)                                   # idle but going round: still healthy
    assert _health(port)[0] == 200
    cluster.produce([(b"acct-h", b'{"HANGS-THE-WORKER": 1}', None)])
    code, body = _wait(lambda: (lambda h: h if h[0] == 503 else None)(_health(port)), 30, "503")
    assert body["status"] == "stalled" and body["loop_age_s"] > 3
    assert proc.poll() is None                      # the process itself is up: only the probe sees it


def _port_open(port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
