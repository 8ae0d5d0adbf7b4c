"""One frozen settings object, built once in ``main`` from flags and ``XWATCH_*`` variables.

Precedence: command-line flag > environment variable > default. ``KAFKA_BOOTSTRAP_SERVERS``
is honoured as a fallback for the broker address (what the test suite and many Kafka
deployments already set).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from streams.connection import OPTIONS as CONNECTION_OPTIONS
from streams.connection import KafkaConnection

__all__ = ["Settings", "Topics"]


DEFAULT_BROKER = "127.0.0.1:9092"


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of the contract topics (every one configurable)."""

    requests: str = "api.requests"
    accounts: str = "api.accounts"
    alerts: str = "abuse.alerts"
    dlq: str = "api.requests.dlq"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker needs. Times are seconds unless the name says ms."""

    broker: str = DEFAULT_BROKER
    app_id: str = "xwatch"
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4                  # used when the worker creates missing topics
    replication_factor: int = -1         # of topics the worker creates; -1: the broker's default
    # event time
    window_s: int = 60                   # tumbling window for per-account statistics
    allowed_lateness_s: int = 30         # events later than this after the watermark go to DLQ
    idle_partition_s: float = 5.0        # wall seconds without events before a partition is idle
    dedup_horizon_s: int = 600           # event_id duplicates within this horizon are dropped
    # detection
    warmup_windows: int = 5              # windows of history before an account alerts on its baseline
    cooldown_windows: int = 10           # quiet windows before an incident is resolved
    # batching
    batch_max: int = 10_000
    batch_timeout_s: float = 0.1
    # state
    snapshot_interval_s: float = 5.0     # wall seconds between state snapshots to Kafka
    poison_after_crashes: int = 3        # a message in flight in this many crashes in a row
    #                                      is dead-lettered instead (see streams.crash_journal)
    session_timeout_s: float = 6.0
    instance_id: str = ""                # static group membership (group.instance.id); "" = off
    health_stall_s: float = 120.0        # /health fails when the engine loop stalls this long
    connect_deadline_s: float = 300.0    # how long a starting worker waits for Kafka
    web_port: int = 6066
    web_enabled: bool = True
    log_level: str = "info"
    # how every Kafka client connects (TLS, SASL, overrides); its bootstrap is ``broker``
    kafka: KafkaConnection | None = field(default=None, repr=False, compare=False)

    @property
    def connection(self) -> KafkaConnection:
        """The one Kafka client configuration every client of this worker is built from."""
        if self.kafka is None:
            return KafkaConnection.from_options(self.broker)
        return self.kafka if self.kafka.bootstrap == self.broker else self.kafka.with_bootstrap(self.broker)

    @property
    def state_topic(self) -> str:
        return f"{self.app_id}-state"

    @property
    def coordination_topic(self) -> str:
        """Internal: per-account window summaries for the cross-account (hydra) view."""
        return f"{self.app_id}-coordination"

    @property
    def group_id(self) -> str:
        return f"{self.app_id}-detector"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``XWATCH_<FIELD>`` variables, then non-``None`` overrides.

        >>> s = Settings.from_env({"XWATCH_WINDOW_S": "30", "KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
        >>> (s.window_s, s.broker)
        (30, 'k:9092')
        >>> Settings.from_env({}, broker="b:1").broker
        'b:1'
        """
        env = os.environ if env is None else env
        connection_flags = {k: overrides.pop(k) for k in list(overrides) if k in CONNECTION_OPTIONS}
        values: dict[str, Any] = {}
        if "KAFKA_BOOTSTRAP_SERVERS" in env:
            values["broker"] = env["KAFKA_BOOTSTRAP_SERVERS"]
        for f in fields(cls):
            key = f"XWATCH_{f.name.upper()}"
            if key in env and f.name not in ("topics", "kafka"):
                values[f.name] = _coerce(f.type, env[key], key)
        topics = {t.name: env[f"XWATCH_TOPIC_{t.name.upper()}"]
                  for t in fields(Topics) if f"XWATCH_TOPIC_{t.name.upper()}" in env}
        topic_overrides = overrides.pop("topics", None)
        values.update({k: v for k, v in overrides.items() if v is not None})
        base_topics = topic_overrides if isinstance(topic_overrides, Topics) else Topics()
        values["topics"] = dataclasses.replace(base_topics, **topics)
        if values.get("kafka") is None:
            values["kafka"] = KafkaConnection.from_env(
                env, broker=values.get("broker") or DEFAULT_BROKER, **connection_flags)
        values["broker"] = values["kafka"].bootstrap
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.window_s <= 0:
            raise ValueError("window_s must be positive")
        if self.allowed_lateness_s < 0:
            raise ValueError("allowed_lateness_s must be >= 0")
        if self.replication_factor == 0 or self.replication_factor < -1:
            raise ValueError("replication_factor must be positive, or -1 for the broker's default")
        if self.partitions <= 0:
            raise ValueError("partitions must be positive")
        if self.batch_max <= 0:
            raise ValueError("batch_max must be positive")
        if self.poison_after_crashes < 1:
            raise ValueError("poison_after_crashes must be >= 1")
        if self.dedup_horizon_s < self.window_s + self.allowed_lateness_s:
            raise ValueError("dedup_horizon_s must be at least window_s + allowed_lateness_s")


def _coerce(type_name: Any, raw: str, key: str) -> Any:
    t = str(type_name)
    try:
        if t == "int":
            return int(raw)
        if t == "float":
            return float(raw)
        if t == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return raw
    except ValueError as exc:
        raise ValueError(f"{key}={raw!r}: expected {t}") from exc
