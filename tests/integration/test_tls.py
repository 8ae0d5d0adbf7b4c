"""A worker on a TLS-only Kafka: a real TLS terminator (Debian's stunnel4) in front of an
embedded broker that advertises the terminator's port, so every client -- the engine's
librdkafka clients and Faust's aiokafka side -- must speak TLS and verify the CA.

The certificates are made by the ``openssl`` command for this test (a CA, a server
certificate for ``localhost``/``127.0.0.1``, and an unrelated CA for the wrong-CA case).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.alerts import decode_alert
from streams.broker import EmbeddedBroker, die_with_parent, free_port
from streams.connection import KafkaConnection
from streams.kafka_probe import probe
from streams.simulate import build_scenario, encode_events

pytestmark = pytest.mark.integration

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
OPENSSL = shutil.which("openssl")


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=xwatch test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
             "other-ca.pem", "-days", "2", "-subj", "/CN=some other CA", cwd=d)


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(``127.0.0.1:port`` of the TLS terminator, folder with ca.pem and other-ca.pem)."""
    if STUNNEL is None or OPENSSL is None:
        pytest.skip("stunnel4 or openssl is not installed (Debian: apt-get install stunnel4 openssl); "
                    ".ci/run installs them")
    d = tmp_path_factory.mktemp("tls")
    make_certificates(d)
    tls_port = free_port()
    broker = EmbeddedBroker(advertised=f"127.0.0.1:{tls_port}", log_path=d / "broker.log")
    plain = broker.start()
    (d / "stunnel.conf").write_text(
        f"foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = {plain}\n"
        f"cert = {d / 'server.pem'}\nkey = {d / 'server.key'}\n")
    terminator = subprocess.Popen([STUNNEL, str(d / "stunnel.conf")], stdout=subprocess.DEVNULL,
                                  stderr=open(d / "stunnel.log", "wb"),  # noqa: SIM115
                                  preexec_fn=die_with_parent)   # an interrupted test orphans nothing
    address = f"127.0.0.1:{tls_port}"
    try:
        good = KafkaConnection.from_options(address, ssl_ca_location=str(d / "ca.pem"))
        deadline = time.monotonic() + 20
        while (reason := probe(good, 2.0)) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reason is None, f"the broker behind the terminator does not answer: {reason}"
        yield address, d
    finally:
        terminator.terminate()
        terminator.wait(10)
        broker.stop()


def test_worker_detects_through_tls_with_the_ca(tls_kafka, worker_cluster_type, tmp_path,  # type: ignore[no-untyped-def]
                                                unique_name) -> None:
    address, d = tls_kafka
    conn = KafkaConnection.from_options(f"kafka://{address}", ssl_ca_location=str(d / "ca.pem"))
    assert conn.security_protocol == "SSL" and conn.ssl_check_hostname
    cluster = worker_cluster_type(conn, unique_name, tmp_path)
    cluster.create_topics()
    try:
        scenario = build_scenario("demo", seed=11, duration_s=1200, accounts=120, total_rate=40.0)
        items = [(k, v, ts) for k, ts, v in encode_events(scenario)]
        _proc, port = cluster.start_worker()
        cluster.produce(items)
        cluster.wait_counted(port, len(items))
        deadline = time.monotonic() + 40
        named: set[str] = set()
        while time.monotonic() < deadline and "acct-x-solo" not in named:
            alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0)]
            named = {a for al in alerts if al.status == "firing" for a in al.account_ids}
        # the solo campaign's alert travels through the cross-account view (Faust's aiokafka
        # consumer and producer), so this also proves the Faust side speaks TLS
        assert "acct-x-solo" in named
    finally:
        cluster.stop_all()


def test_wrong_ca_is_one_clear_line(tls_kafka) -> None:  # type: ignore[no-untyped-def]
    address, d = tls_kafka
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--broker", address,
         "--ssl-ca", str(d / "other-ca.pem"), "--connect-deadline", "1", "--web-port", str(free_port())],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 69, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("xwatch worker: cannot reach Kafka at") and "certificate verify failed" in last
    assert "Traceback" not in run.stderr


def test_plaintext_client_against_tls_fails_without_traceback(tls_kafka) -> None:  # type: ignore[no-untyped-def]
    address, _ = tls_kafka
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "alerts", "--broker", address],
        capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
