"""Creating the topics the worker needs (contract topics and its own state topic)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings

__all__ = ["ensure_topics", "kafka_config"]

log = logging.getLogger(__name__)


def kafka_config(settings: Settings, **extra: object) -> dict[str, object]:
    return settings.connection.client_config(**extra)


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> None:
    """Create any missing topic; existing ones are left as they are."""
    admin = AdminClient(kafka_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.connection.describe()}: {exc}") from exc
    t, rf = settings.topics, settings.replication_factor
    wanted = [
        NewTopic(t.requests, settings.partitions, rf),
        NewTopic(t.accounts, settings.partitions, rf, config={"cleanup.policy": "compact"}),
        NewTopic(t.alerts, settings.partitions, rf),
        NewTopic(t.dlq, settings.partitions, rf),
        # partitioned like the input: a restore reads only its own partitions
        NewTopic(settings.state_topic, settings.partitions, rf, config={"cleanup.policy": "compact"}),
        NewTopic(settings.coordination_topic, 1, rf),   # one partition: one cross-account view
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
