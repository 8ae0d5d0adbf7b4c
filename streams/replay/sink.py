"""The replay target: one topic, written by a confluent-kafka producer tuned for bulk.

``linger.ms=50`` and large batches: with smaller lingers the embedded broker's CPU climbs
as small batches pile up (DESIGN-NOTES). Delivery reports are asked for failures only, so
``poll`` costs nothing per message; failures are counted and the first one is kept.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.replay.errors import ReplayError

__all__ = ["PRODUCER_DEFAULTS", "TopicSink", "check_broker", "client_logger", "producer_config"]

PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 50,
    "batch.num.messages": 10_000,
    "compression.type": "none",
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 262_144,
    "delivery.report.only.error": True,
    "message.timeout.ms": 60_000,
    "socket.connection.setup.timeout.ms": 5_000,
}

# librdkafka logs (connection refused, ...) go here instead of raw to stderr; the tool
# reports broker problems itself, in words.
client_logger = logging.getLogger("streams.replay.kafka")
client_logger.addHandler(logging.NullHandler())
client_logger.propagate = False


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """The replay producer's configuration (``overrides`` win).

    >>> cfg = producer_config("k:9092", **{"linger.ms": 5})
    >>> cfg["bootstrap.servers"], cfg["linger.ms"], cfg["batch.num.messages"]
    ('k:9092', 5, 10000)
    """
    return {"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, "logger": client_logger,
            **overrides}


def _tcp_reachable(bootstrap: str, timeout_s: float) -> str | None:
    """``None`` if some bootstrap address accepts a TCP connection, else why none did.

    librdkafka retries a refused connection until its timeout; this answers at once.
    """
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


def check_broker(bootstrap: str, timeout_s: float = 5.0) -> AdminClient:
    """An admin client for ``bootstrap``, after the broker has answered a metadata request."""
    unreachable = _tcp_reachable(bootstrap, min(timeout_s, 3.0))
    if unreachable is not None:
        raise ReplayError(f"cannot reach a Kafka broker at {bootstrap} ({unreachable}); start one "
                          "with 'xwatch broker' or pass --broker HOST:PORT")
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": client_logger,
                              "socket.connection.setup.timeout.ms": 5_000}
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ReplayError(
            f"cannot reach a Kafka broker at {bootstrap} ({_reason(exc)}); start one with "
            "'xwatch broker' or pass --broker HOST:PORT") from None
    return admin


def _reason(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)


class TopicSink:
    """Produces raw event values to ``topic``; the replay loop calls the producer directly.

    ``check()`` must run first: it fails clearly when the broker is unreachable and creates
    the topic (``partitions``, broker-default replication) when it does not exist.
    """

    def __init__(self, bootstrap: str, topic: str, *, partitions: int = 4,
                 create: bool = True, config: dict[str, Any] | None = None) -> None:
        if partitions <= 0:
            raise ValueError("partitions must be positive")
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.create = create
        self.failed = 0
        self.first_error: str | None = None
        self.created = False
        self.producer = Producer(producer_config(
            bootstrap, on_delivery=self._on_delivery, error_cb=self._on_error, **(config or {})))

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = err.str()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.first_error = self.first_error or err.str()

    def check(self, timeout_s: float = 5.0) -> None:
        admin = check_broker(self.bootstrap, timeout_s)
        if self.topic in admin.list_topics(timeout=timeout_s).topics:
            return
        if not self.create:
            raise ReplayError(f"topic {self.topic!r} does not exist on {self.bootstrap}")
        future = admin.create_topics([NewTopic(self.topic, self.partitions, -1)])[self.topic]
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ReplayError(f"cannot create topic {self.topic!r}: {_reason(exc)}") from None
        self.created = True

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for outstanding messages; the number still undelivered after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        left = len(self.producer)
        while left and time.monotonic() < deadline:
            left = self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return left
