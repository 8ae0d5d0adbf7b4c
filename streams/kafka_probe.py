"""Is Kafka there, and if not, why -- in words an operator can act on.

:func:`probe` answers at once when nothing listens (a TCP connect, not librdkafka's
retries until a timeout), and otherwise asks for metadata with the one client
configuration, so a wrong CA, a failed TLS handshake or refused SASL credentials come back
as librdkafka's own reason. :func:`wait_for_kafka` retries with exponential backoff up to a
deadline and logs one line per attempt, never a traceback.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streams.connection import KafkaConnection, as_connection

__all__ = ["KafkaUnreachable", "Reachability", "probe", "quiet_client_logger", "wait_for_kafka"]

log = logging.getLogger(__name__)

# librdkafka's own log lines (connection refused, handshake failed, ...) go here instead of
# raw to stderr; what matters is reported once, in words, by whoever asked.
quiet_client_logger = logging.getLogger("streams.kafka.client")
quiet_client_logger.addHandler(logging.NullHandler())
quiet_client_logger.propagate = False


class KafkaUnreachable(ConnectionError):
    """No broker answered; the message says where, how and why, in one line."""


def _tcp_refusals(bootstrap: str, timeout_s: float) -> str | None:
    """``None`` if some bootstrap address accepts a TCP connection, else why none did."""
    reasons = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        host = host.strip("[]") or "localhost"
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return None
        except (OSError, ValueError) as exc:
            reasons.append(f"{address.strip()}: {getattr(exc, 'strerror', None) or exc}")
    return "; ".join(reasons)


def error_text(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)


def probe(broker: str | KafkaConnection, timeout_s: float = 5.0) -> str | None:
    """``None`` once a broker has answered a metadata request, else the reason in words."""
    conn = as_connection(broker)
    refused = _tcp_refusals(conn.bootstrap, min(timeout_s, 3.0))
    if refused is not None:
        return refused
    errors: list[KafkaError] = []
    admin = AdminClient(conn.client_config(**{
        "logger": quiet_client_logger, "error_cb": errors.append,
        "socket.connection.setup.timeout.ms": int(min(timeout_s, 10.0) * 1000)}))
    try:
        admin.list_topics(timeout=timeout_s)
        return None
    except KafkaException as exc:
        admin.poll(0)        # serve the error callbacks: they say why (TLS, SASL, ...)
        telling = [e for e in errors if e.code() in (KafkaError._SSL, KafkaError._AUTHENTICATION,
                                                     KafkaError.SASL_AUTHENTICATION_FAILED)]
        chosen = (telling or errors)
        return chosen[-1].str() if chosen else error_text(exc)


def wait_for_kafka(broker: str | KafkaConnection, deadline_s: float, *,
                   sleep: Callable[[float], None] = time.sleep,
                   attempt_timeout_s: float = 5.0) -> None:
    """Return once Kafka answers; retry with backoff (1 s doubling to 30 s) until
    ``deadline_s`` seconds have passed, then raise :class:`KafkaUnreachable`."""
    conn = as_connection(broker)
    start = time.monotonic()
    delay, attempt = 1.0, 0
    while True:
        attempt += 1
        reason = probe(conn, attempt_timeout_s)
        if reason is None:
            if attempt > 1:
                log.info("Kafka at %s answers (attempt %d)", conn.describe(), attempt)
            return
        left = deadline_s - (time.monotonic() - start)
        if left <= 0:
            raise KafkaUnreachable(f"cannot reach Kafka at {conn.describe()}: {reason} "
                                   f"(gave up after {attempt} attempts in {deadline_s:.0f}s)")
        wait = min(delay, left)
        log.warning("Kafka at %s not reachable (%s); retrying in %.0fs", conn.bootstrap, reason, wait)
        sleep(wait)
        delay = min(delay * 2, 30.0)


# librdkafka errors that mean "the cluster cannot be reached right now" (it retries them)
_OUTAGE_CODES = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                           KafkaError._RESOLVE, KafkaError._MSG_TIMED_OUT, KafkaError.REQUEST_TIMED_OUT})


class Reachability:
    """One log line when Kafka goes away and one when it is back, however many clients
    retry how often in between (their own log lines are silenced by
    :data:`quiet_client_logger`); other client errors are logged once per kind.

    ``on_error`` is the ``error_cb`` of every client of a worker; ``reached`` is called
    by whoever sees Kafka answer (a consumed batch, an acknowledged snapshot).

    >>> r = Reachability("test")
    >>> r.on_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    >>> r.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    >>> r.outages, r.down
    (1, True)
    >>> r.reached(); r.down
    False
    """

    def __init__(self, name: str, logger: logging.Logger | None = None) -> None:
        self.name = name
        self.log = logger or log
        self.outages = 0
        self._down_since: float | None = None
        self._other_kinds: set[int] = set()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def on_error(self, err: KafkaError) -> None:
        if err.code() in _OUTAGE_CODES:
            if self._down_since is None:
                self._down_since = time.monotonic()
                self.outages += 1
                self.log.warning("%s: Kafka unreachable (%s); retrying until it is back", self.name, err.str())
        elif err.code() not in self._other_kinds or err.fatal():
            self._other_kinds.add(err.code())
            self.log.warning("%s: Kafka client error: %s", self.name, err.str())

    def reached(self) -> None:
        if self._down_since is not None:
            self.log.warning("%s: Kafka reachable again after %.0fs", self.name,
                             time.monotonic() - self._down_since)
            self._down_since = None
