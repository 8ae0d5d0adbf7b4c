"""Creating the topics the worker needs (contract topics and its own state topic)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings

__all__ = ["ensure_topics", "kafka_config"]

log = logging.getLogger(__name__)


def kafka_config(settings: Settings, **extra: object) -> dict[str, object]:
    return {"bootstrap.servers": settings.broker, **extra}


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> None:
    """Create any missing topic; existing ones are left as they are."""
    admin = AdminClient(kafka_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.broker}: {exc}") from exc
    t = settings.topics
    wanted = [
        NewTopic(t.requests, settings.partitions, 1),
        NewTopic(t.accounts, settings.partitions, 1, config={"cleanup.policy": "compact"}),
        NewTopic(t.alerts, settings.partitions, 1),
        NewTopic(t.dlq, settings.partitions, 1),
        NewTopic(settings.state_topic, 1, 1, config={"cleanup.policy": "compact"}),
        NewTopic(settings.coordination_topic, 1, 1),   # one partition: one cross-account view
    ]
    missing = [nt for nt in wanted if nt.topic not in existing]
    if not missing:
        return
    for name, fut in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            fut.result()
            log.info("created topic %s", name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
