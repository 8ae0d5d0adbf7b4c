"""The replay target: one topic, written by a confluent-kafka producer tuned for bulk.

``linger.ms=50`` and large batches: with smaller lingers the embedded broker's CPU climbs
as small batches pile up (DESIGN-NOTES). Delivery reports are asked for failures only, so
``poll`` costs nothing per message; failures are counted and the first one is kept.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.connection import KafkaConnection, client_config
from streams.kafka_probe import error_text, probe, quiet_client_logger
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

# librdkafka logs (connection refused, ...) go to the quiet logger instead of raw to
# stderr; the tool reports broker problems itself, in words.
client_logger = quiet_client_logger


def producer_config(bootstrap: str | KafkaConnection, **overrides: Any) -> dict[str, Any]:
    """The replay producer's configuration (``overrides`` win).

    >>> cfg = producer_config("k:9092", **{"linger.ms": 5})
    >>> cfg["bootstrap.servers"], cfg["linger.ms"], cfg["batch.num.messages"]
    ('k:9092', 5, 10000)
    """
    return client_config(bootstrap, {**PRODUCER_DEFAULTS, "logger": client_logger, **overrides})


def check_broker(bootstrap: str | KafkaConnection, timeout_s: float = 5.0) -> AdminClient:
    """An admin client for ``bootstrap``, after the broker has answered a metadata request."""
    reason = probe(bootstrap, timeout_s)
    if reason is not None:
        raise ReplayError(f"cannot reach a Kafka broker at {bootstrap} ({reason}); start one "
                          "with 'xwatch broker' or pass --broker HOST:PORT")
    return AdminClient(client_config(bootstrap, {"logger": client_logger,
                                                 "socket.connection.setup.timeout.ms": 5_000}))


class TopicSink:
    """Produces raw event values to ``topic``; the replay loop calls the producer directly.

    ``check()`` must run first: it fails clearly when the broker is unreachable and creates
    the topic (``partitions``, broker-default replication) when it does not exist.
    """

    def __init__(self, bootstrap: str | KafkaConnection, topic: str, *, partitions: int = 4,
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
                raise ReplayError(f"cannot create topic {self.topic!r}: {error_text(exc)}") from None
        self.created = True

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for outstanding messages; the number still undelivered after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        left = len(self.producer)
        while left and time.monotonic() < deadline:
            left = self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return left
