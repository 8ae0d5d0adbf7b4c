"""One Kafka client configuration, used by every Kafka client of the worker and its tools.

Where the broker is and how to talk to it securely is said once -- by flags, ``XWATCH_*``
variables or files mounted from Kubernetes Secrets -- and every client (the worker's
consumer and producer, the state store, the account registry, the alert reader, replay,
evaluate, the Faust side) is built from the same :class:`KafkaConnection`:

* ``bootstrap``: ``host:port[,host:port...]``; ``kafka://host:port`` (Faust's spelling)
  and ``;`` between addresses are accepted and normalised;
* ``security.protocol``: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
  (default: ``SASL_SSL`` when a SASL mechanism is given, ``SSL`` when a CA or client
  certificate is, else ``PLAINTEXT``);
* SASL: ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512`` with a user name and password (the
  password from ``XWATCH_SASL_PASSWORD`` or a file, never a flag: flags show in ``ps``);
  ``OAUTHBEARER`` with librdkafka's OIDC settings passed as ``--kafka-config``;
* TLS: CA file, client certificate and key (and the key's password), hostname check;
* anything else librdkafka knows: ``--kafka-config key=value`` (repeatable;
  ``XWATCH_KAFKA_CONFIG``: one pair a line) or a properties file (``--kafka-config-file``),
  applied last.

Secrets never reach a log line: :meth:`KafkaConnection.describe` and ``repr`` leave them out.

>>> c = KafkaConnection.from_options(broker="kafka://k1:9092;k2:9093", sasl_mechanism="SCRAM-SHA-512",
...                                  sasl_username="xwatch", sasl_password="s3cret")
>>> cfg = c.client_config(**{"group.id": "g"})
>>> cfg["bootstrap.servers"], cfg["security.protocol"], cfg["sasl.mechanism"], cfg["group.id"]
('k1:9092,k2:9093', 'SASL_SSL', 'SCRAM-SHA-512', 'g')
>>> "s3cret" in repr(c) or "s3cret" in c.describe()
False
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["OPTIONS", "KafkaConnection", "SASL_MECHANISMS", "SECURITY_PROTOCOLS", "as_connection", "client_config",
           "parse_bootstrap", "parse_properties"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
# the options a command line or a settings override may give (see from_options)
OPTIONS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password_file",
           "ssl_ca_location", "ssl_certificate_location", "ssl_key_location",
           "ssl_key_password_file", "ssl_check_hostname", "kafka_config", "kafka_config_file")
# ... and the XWATCH_<NAME> variables read as text (secrets themselves: environment only)
_ENV_TEXT = (*(n for n in OPTIONS if n not in ("ssl_check_hostname", "kafka_config")),
             "sasl_password", "ssl_key_password")
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_SECRET_KEYS = ("password", "secret", "token", "key.pem", "private")


def parse_bootstrap(raw: str) -> str:
    """``host:port[,host:port...]`` from what a user may write.

    >>> parse_bootstrap(" kafka://a:9092; kafka://b:9092 ,c:1")
    'a:9092,b:9092,c:1'
    >>> parse_bootstrap("[::1]:9092")
    '[::1]:9092'
    >>> parse_bootstrap("kafka:9092x")
    Traceback (most recent call last):
    ...
    ValueError: broker 'kafka:9092x': expected host:port[,host:port...] or kafka://host:port
    """
    parts = []
    for item in re.split(r"[,;]", raw):
        item = item.strip()
        if not item:
            continue
        address = item.split("://", 1)[1] if "://" in item else item
        if "://" in item and item.split("://", 1)[0].lower() != "kafka":
            raise ValueError(f"broker {raw!r}: only kafka:// URLs (or plain host:port) are understood")
        m = _ADDRESS.match(address.rstrip("/"))
        if m is None or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"broker {raw!r}: expected host:port[,host:port...] or kafka://host:port")
        parts.append(address.rstrip("/"))
    if not parts:
        raise ValueError("no broker given: expected host:port[,host:port...]")
    return ",".join(parts)


def parse_properties(text: str, origin: str) -> tuple[tuple[str, str], ...]:
    """``key=value`` lines (``#`` comments, blank lines) or comma-free pairs.

    >>> parse_properties("# tuning\\nfetch.min.bytes = 1\\nclient.rack=eu-1a", "f")
    (('fetch.min.bytes', '1'), ('client.rack', 'eu-1a'))
    """
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{origin}, line {n}: expected key=value")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the brokers are and how every client authenticates and encrypts."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True
    extra: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return self.bootstrap

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_options(cls, broker: str, *, security_protocol: str | None = None,
                     sasl_mechanism: str | None = None, sasl_username: str | None = None,
                     sasl_password: str | None = None, sasl_password_file: str | None = None,
                     ssl_ca_location: str | None = None, ssl_certificate_location: str | None = None,
                     ssl_key_location: str | None = None, ssl_key_password: str | None = None,
                     ssl_key_password_file: str | None = None, ssl_check_hostname: bool | None = None,
                     kafka_config: tuple[str, ...] | list[str] = (),
                     kafka_config_file: str | None = None) -> KafkaConnection:
        """Checked and complete; a ``ValueError`` with one clear line otherwise."""
        mech = sasl_mechanism.upper() if sasl_mechanism else None
        if mech is not None and mech not in SASL_MECHANISMS:
            raise ValueError(f"SASL mechanism {sasl_mechanism!r}: expected one of {', '.join(SASL_MECHANISMS)}")
        if sasl_password_file:
            sasl_password = _read_secret(sasl_password_file, "SASL password")
        if ssl_key_password_file:
            ssl_key_password = _read_secret(ssl_key_password_file, "TLS key password")
        tls_given = bool(ssl_ca_location or ssl_certificate_location)
        protocol = (security_protocol or "").upper() or (
            "SASL_SSL" if mech else "SSL" if tls_given else "PLAINTEXT")
        if protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"security protocol {security_protocol!r}: expected one of "
                             f"{', '.join(SECURITY_PROTOCOLS)}")
        if protocol.startswith("SASL") and mech is None:
            mech = "PLAIN"
        if mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and protocol.startswith("SASL"):
            if not sasl_username or sasl_password is None:
                raise ValueError(f"SASL {mech} needs a user name (--sasl-username) and a password "
                                 "(XWATCH_SASL_PASSWORD or --sasl-password-file)")
        for what, path in (("CA", ssl_ca_location), ("client certificate", ssl_certificate_location),
                           ("client key", ssl_key_location)):
            if path and not os.path.isfile(path):
                raise ValueError(f"TLS {what} file {path} does not exist")
        if bool(ssl_certificate_location) != bool(ssl_key_location):
            raise ValueError("a TLS client certificate needs its key, and a key its certificate")
        extra: list[tuple[str, str]] = []
        if kafka_config_file:
            try:
                extra += parse_properties(Path(kafka_config_file).read_text(), kafka_config_file)
            except OSError as exc:
                raise ValueError(f"cannot read {kafka_config_file}: {exc.strerror or exc}") from None
        for item in kafka_config:            # one key=value a flag; the variable: one a line
            extra += parse_properties(item, "--kafka-config")
        return cls(parse_bootstrap(broker), protocol, mech if protocol.startswith("SASL") else None,
                   sasl_username, sasl_password, ssl_ca_location, ssl_certificate_location,
                   ssl_key_location, ssl_key_password,
                   True if ssl_check_hostname is None else ssl_check_hostname, tuple(extra))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> KafkaConnection:
        """``XWATCH_*`` variables under non-``None`` flags (``broker`` also from
        ``KAFKA_BOOTSTRAP_SERVERS``).

        >>> KafkaConnection.from_env({"XWATCH_SECURITY_PROTOCOL": "ssl"}, broker="k:1").security_protocol
        'SSL'
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in _ENV_TEXT:
            if f"XWATCH_{name.upper()}" in env:
                values[name] = env[f"XWATCH_{name.upper()}"]
        if "XWATCH_SSL_CHECK_HOSTNAME" in env:
            values["ssl_check_hostname"] = env["XWATCH_SSL_CHECK_HOSTNAME"].strip().lower() in {"1", "true", "yes", "on"}
        if env.get("XWATCH_KAFKA_CONFIG"):
            values["kafka_config"] = (env["XWATCH_KAFKA_CONFIG"],)
        broker = flags.pop("broker", None) or env.get("XWATCH_BROKER") or env.get("KAFKA_BOOTSTRAP_SERVERS")
        if not broker:
            raise ValueError("no broker given: use --broker HOST:PORT or set XWATCH_BROKER")
        values.update({k: v for k, v in flags.items() if v is not None and v != ()})
        return cls.from_options(broker, **values)

    def with_bootstrap(self, bootstrap: str) -> KafkaConnection:
        return replace(self, bootstrap=parse_bootstrap(bootstrap))

    # -- using ---------------------------------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def client_config(self, **role: Any) -> dict[str, Any]:
        """A confluent-kafka client configuration: the connection, then the client's own
        settings (``role``), then the user's ``--kafka-config`` overrides."""
        cfg: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.security_protocol != "PLAINTEXT":
            cfg["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            cfg["sasl.mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                cfg["sasl.username"] = self.sasl_username
            if self.sasl_password is not None:
                cfg["sasl.password"] = self.sasl_password
        if self.tls:
            for key, value in (("ssl.ca.location", self.ssl_ca_location),
                               ("ssl.certificate.location", self.ssl_certificate_location),
                               ("ssl.key.location", self.ssl_key_location),
                               ("ssl.key.password", self.ssl_key_password)):
                if value:
                    cfg[key] = value
            cfg["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
        cfg.update(role)
        cfg.update(self.extra)
        return cfg

    def describe(self) -> str:
        """For log lines and errors: where and how, no secret.

        >>> KafkaConnection("k:1", "SASL_SSL", "PLAIN", "u", "pw", extra=(("sasl.password", "x"),)).describe()
        'k:1 (SASL_SSL, SASL PLAIN as u, hostname checked)'
        """
        how = [self.security_protocol]
        if self.sasl_mechanism:
            how.append(f"SASL {self.sasl_mechanism}" + (f" as {self.sasl_username}" if self.sasl_username else ""))
        if self.ssl_ca_location:
            how.append(f"CA {self.ssl_ca_location}")
        if self.ssl_certificate_location:
            how.append(f"client certificate {self.ssl_certificate_location}")
        if self.tls:
            how.append("hostname checked" if self.ssl_check_hostname else "hostname NOT checked")
        shown = [k for k, _ in self.extra if not any(s in k for s in _SECRET_KEYS)]
        if shown:
            how.append("with " + ", ".join(shown))
        return f"{self.bootstrap} ({', '.join(how)})"

    def to_env(self) -> dict[str, str]:
        """``XWATCH_*`` variables that rebuild this connection in a child process (secrets
        included: a process's environment is not a log).

        >>> KafkaConnection.from_env(KafkaConnection("k:1", "SSL", extra=(("a", "1"),)).to_env()).client_config()
        {'bootstrap.servers': 'k:1', 'security.protocol': 'SSL', 'ssl.endpoint.identification.algorithm': 'https', 'a': '1'}
        """
        env = {"XWATCH_BROKER": self.bootstrap, "XWATCH_SECURITY_PROTOCOL": self.security_protocol,
               "XWATCH_SSL_CHECK_HOSTNAME": "true" if self.ssl_check_hostname else "false"}
        for name in ("sasl_mechanism", "sasl_username", "sasl_password", "ssl_ca_location",
                     "ssl_certificate_location", "ssl_key_location", "ssl_key_password"):
            value = getattr(self, name)
            if value is not None:
                env[f"XWATCH_{name.upper()}"] = value
        if self.extra:
            env["XWATCH_KAFKA_CONFIG"] = "\n".join(f"{k}={v}" for k, v in self.extra)
        return env

    # -- the Faust (aiokafka) side -------------------------------------------------------
    def faust_broker(self) -> str:
        """Faust's broker URL list: ``kafka://a:1;kafka://b:2``."""
        return ";".join(f"kafka://{a}" for a in self.bootstrap.split(","))

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_ca_location)
        ctx.check_hostname = self.ssl_check_hostname
        if self.ssl_certificate_location and self.ssl_key_location:
            ctx.load_cert_chain(self.ssl_certificate_location, self.ssl_key_location,
                                password=self.ssl_key_password)
        return ctx

    def faust_credentials(self) -> Any:
        """Credentials for Faust's aiokafka clients, ``None`` for plaintext.

        OAUTHBEARER is librdkafka-only here: aiokafka needs a token provider object, which
        this project does not ship yet; asking for it raises a one-line error.
        """
        import faust

        if self.sasl_mechanism == "OAUTHBEARER":
            raise ValueError("SASL OAUTHBEARER is not supported for the worker's Faust side yet "
                             "(the librdkafka clients support it); use SCRAM or PLAIN")
        if self.sasl_mechanism:
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                         ssl_context=self.ssl_context(), mechanism=self.sasl_mechanism)
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


def as_connection(broker: str | KafkaConnection) -> KafkaConnection:
    """A connection from either a connection or a plain ``host:port`` string.

    >>> as_connection("kafka://k:9092").client_config()
    {'bootstrap.servers': 'k:9092'}
    """
    return broker if isinstance(broker, KafkaConnection) else KafkaConnection(parse_bootstrap(broker))


def client_config(broker: str | KafkaConnection, role: dict[str, Any] | None = None) -> dict[str, Any]:
    """``broker``'s client configuration with a client's own settings (``role``).

    >>> client_config("k:1", {"group.id": "g"})
    {'bootstrap.servers': 'k:1', 'group.id': 'g'}
    """
    return as_connection(broker).client_config(**(role or {}))
