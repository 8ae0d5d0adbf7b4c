"""Integration helpers: real worker processes against the session broker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streams.broker import free_port
from streams.connection import KafkaConnection, as_connection, client_config
from streams.demo import fetch_metrics, start_worker_process, stop_process, wait_healthy
from streams.settings import Settings, Topics
from streams.topics import ensure_topics


@dataclass
class WorkerCluster:
    """Topics and app id unique to one test, and the worker processes it started."""

    broker: str | KafkaConnection
    name: str
    tmp: Path
    procs: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        u = self.name
        return Settings.from_env(
            {}, kafka=as_connection(self.broker), app_id=f"xw-{u}", partitions=2,
            topics=Topics(requests=f"req-{u}", accounts=f"acc-{u}", alerts=f"alerts-{u}", dlq=f"dlq-{u}"))

    @property
    def env(self) -> dict[str, str]:
        s = self.settings
        return {"XWATCH_APP_ID": s.app_id, "XWATCH_PARTITIONS": "2",
                "XWATCH_TOPIC_REQUESTS": s.topics.requests, "XWATCH_TOPIC_ACCOUNTS": s.topics.accounts,
                "XWATCH_TOPIC_ALERTS": s.topics.alerts, "XWATCH_TOPIC_DLQ": s.topics.dlq}

    def create_topics(self) -> None:
        ensure_topics(self.settings)

    def start_worker(self, **env: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        log = self.tmp / f"worker-{self.name}-{len(self.procs)}.log"
        proc = start_worker_process(self.broker, port, log, {**self.env, **env})
        self.procs.append((proc, port))
        if not wait_healthy(port, proc, timeout_s=60):
            raise AssertionError(f"worker not healthy; log:\n{log.read_text()[-3000:]}")
        return proc, port

    def metrics(self, port: int) -> dict[str, float]:
        return fetch_metrics(port)

    def wait_counted(self, port: int, at_least: int, timeout_s: float = 60) -> dict[str, float]:
        deadline = time.monotonic() + timeout_s
        m: dict[str, float] = {}
        while time.monotonic() < deadline:
            m = self.metrics(port)
            if m.get("xwatch_messages_in_total", 0) >= at_least:
                return m
            time.sleep(0.2)
        raise AssertionError(f"worker saw {m.get('xwatch_messages_in_total')} < {at_least} messages")

    def produce(self, items: list[tuple[str | bytes | None, bytes, int | None]]) -> None:
        p = Producer(client_config(self.broker, {"linger.ms": 50}))
        for key, value, ts in items:
            if ts is None:
                p.produce(self.settings.topics.requests, key=key, value=value)
            else:
                p.produce(self.settings.topics.requests, key=key, value=value, timestamp=ts)
            p.poll(0)
        assert p.flush(30) == 0

    def produce_accounts(self, records: list[tuple[str, bytes]]) -> None:
        """Account records (key, value) onto the account stream, before a worker starts."""
        p = Producer(client_config(self.broker, {"linger.ms": 50}))
        for key, value in records:
            p.produce(self.settings.topics.accounts, key=key, value=value)
        assert p.flush(30) == 0

    def read_topic(self, topic: str, idle_s: float = 2.0) -> list[tuple[bytes | None, bytes | None]]:
        c = Consumer(client_config(self.broker, {"group.id": f"read-{time.monotonic_ns()}",
                                                 "enable.auto.commit": False}))
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        out = []
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            msgs = c.consume(1000, 0.2)
            for m in msgs:
                if not m.error():
                    out.append((m.key(), m.value()))
            if msgs:
                last = time.monotonic()
        c.close()
        return out

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="session")
def worker_cluster_type() -> type[WorkerCluster]:
    """The class, for fixtures of a wider scope than ``cluster`` (tests do not import conftest)."""
    return WorkerCluster


@pytest.fixture
def cluster(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> Iterator[WorkerCluster]:
    c = WorkerCluster(kafka_bootstrap, unique_name, tmp_path)
    c.create_topics()
    try:
        yield c
    finally:
        c.stop_all()


__all__ = ["WorkerCluster", "os", "stop_process"]
