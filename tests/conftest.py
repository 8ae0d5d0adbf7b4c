"""Shared fixtures: one Kafka-protocol broker for the whole session.

The embedded Tansu broker is started once; ``KAFKA_BOOTSTRAP_SERVERS`` points the suite at
another broker instead. Tests isolate themselves with unique topic names and app ids.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    from streams.broker import EmbeddedBroker

    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap or ""
    finally:
        broker.stop()


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for topic names and app ids of one test."""
    return uuid.uuid4().hex[:8]
