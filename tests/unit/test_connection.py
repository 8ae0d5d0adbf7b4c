"""The one Kafka client configuration: parsing, security settings, secrets, and that every
Kafka client in ``streams/`` is built from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import free_port
from streams.connection import KafkaConnection, parse_bootstrap
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [
    ("k:9092", "k:9092"),
    ("kafka://k:9092", "k:9092"),
    ("kafka://a:1;kafka://b:2", "a:1,b:2"),
    (" a:1 , b:2 ", "a:1,b:2"),
    ("KAFKA://a:1/", "a:1"),
    ("[::1]:9092", "[::1]:9092"),
])
def test_bootstrap_spellings(raw: str, expected: str) -> None:
    assert parse_bootstrap(raw) == expected


@pytest.mark.parametrize("raw", ["", "k", "k:", "k:0", "k:70000", "http://k:1", "k:9092:1", ","])
def test_bad_bootstrap_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_bootstrap(raw)


def test_protocol_follows_what_is_given(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert KafkaConnection.from_options("k:1").security_protocol == "PLAINTEXT"
    assert KafkaConnection.from_options("k:1", ssl_ca_location=str(ca)).security_protocol == "SSL"
    sasl = KafkaConnection.from_options("k:1", sasl_mechanism="scram-sha-256", sasl_username="u",
                                        sasl_password="p")
    assert (sasl.security_protocol, sasl.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    cfg = KafkaConnection.from_options("k:1", security_protocol="sasl_plaintext", sasl_username="u",
                                       sasl_password="p").client_config()
    assert cfg["security.protocol"] == "SASL_PLAINTEXT" and cfg["sasl.mechanism"] == "PLAIN"
    assert "ssl.ca.location" not in cfg


def test_tls_settings_reach_librdkafka(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "keypw").write_text("kpw\n")
    c = KafkaConnection.from_options(
        "k:1", ssl_ca_location=str(tmp_path / "ca.pem"), ssl_certificate_location=str(tmp_path / "cert.pem"),
        ssl_key_location=str(tmp_path / "key.pem"), ssl_key_password_file=str(tmp_path / "keypw"),
        ssl_check_hostname=False)
    cfg = c.client_config()
    assert cfg["ssl.ca.location"].endswith("ca.pem") and cfg["ssl.certificate.location"].endswith("cert.pem")
    assert cfg["ssl.key.password"] == "kpw"                      # the file's trailing newline dropped
    assert cfg["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"sasl_mechanism": "PLAIN"}, "needs a user name"),
    ({"sasl_mechanism": "KERBEROS"}, "expected one of"),
    ({"security_protocol": "TLS"}, "expected one of"),
    ({"ssl_ca_location": "/nonexistent/ca.pem"}, "does not exist"),
    ({"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password_file": "/nonexistent/pw"},
     "cannot read the SASL password file"),
    ({"kafka_config": ("no-equals-sign",)}, "expected key=value"),
])
def test_mistakes_are_one_line(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        KafkaConnection.from_options("k:1", **kwargs)
    assert "\n" not in str(info.value)


def test_overrides_win_and_come_from_flags_env_and_files(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("# mounted from a Secret\nclient.rack = eu-1a\nfetch.wait.max.ms=7\n")
    c = KafkaConnection.from_env({"XWATCH_KAFKA_CONFIG": "socket.keepalive.enable=true\nlinger.ms=3",
                                  "XWATCH_KAFKA_CONFIG_FILE": str(props)}, broker="k:1")
    cfg = c.client_config(**{"linger.ms": 20, "fetch.wait.max.ms": 10, "group.id": "g"})
    assert cfg["linger.ms"] == "3" and cfg["fetch.wait.max.ms"] == "7" and cfg["client.rack"] == "eu-1a"
    assert cfg["group.id"] == "g" and cfg["socket.keepalive.enable"] == "true"


def test_secrets_never_in_reprs_or_descriptions(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2-sasl")
    env = {"XWATCH_SASL_MECHANISM": "SCRAM-SHA-512", "XWATCH_SASL_USERNAME": "xwatch",
           "XWATCH_SASL_PASSWORD_FILE": str(pw),
           "XWATCH_KAFKA_CONFIG": "sasl.oauthbearer.client.secret=hunter3-oidc"}
    s = Settings.from_env(env, broker="kafka://k:9093")
    c = s.connection
    assert c.client_config()["sasl.password"] == "hunter2-sasl"
    for text in (repr(s), str(s), repr(c), str(c), c.describe()):
        assert "hunter2" not in text and "hunter3" not in text
    assert c.describe() == "k:9093 (SASL_SSL, SASL SCRAM-SHA-512 as xwatch, hostname checked)"
    # and a child process gets the same connection back from its environment
    assert KafkaConnection.from_env(c.to_env()).client_config() == c.client_config()


def test_settings_take_the_connection_bootstrap() -> None:
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka://a:1;kafka://b:2"})
    assert s.broker == "a:1,b:2" and s.connection.client_config()["bootstrap.servers"] == "a:1,b:2"
    assert s.connection.faust_broker() == "kafka://a:1;kafka://b:2"
    assert s.replace(broker="c:3").connection.bootstrap == "c:3"


def test_every_kafka_client_is_built_from_the_one_configuration() -> None:
    """No client configuration spelled out by hand anywhere in ``streams/``."""
    offenders = []
    for path in sorted((ROOT / "streams").rglob("*.py")):
        if path.name == "connection.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r'"bootstrap\.servers"\s*:', line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "worker", *args, "--web-port",
                           str(free_port())], capture_output=True, text=True, timeout=60)


def test_worker_with_a_bad_broker_address_says_so_in_one_line() -> None:
    run = _worker("--broker", "kafka:9092x")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "expected host:port" in run.stderr


def test_worker_waits_for_kafka_then_gives_up_in_one_line() -> None:
    run = _worker("--broker", f"kafka://127.0.0.1:{free_port()}", "--connect-deadline", "2")
    assert run.returncode == 69 and "Traceback" not in run.stderr
    assert "retrying in 1s" in run.stderr                       # it did retry, with backoff
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("xwatch worker: cannot reach Kafka at 127.0.0.1:") and "refused" in last
