"""The state topic is partitioned like the input: a partition's snapshots and crash
journal live in its home partition of the state topic, and a restore reads only the homes
of the partitions it restores, not the whole topic."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.state_store import SnapshotStore

pytestmark = pytest.mark.integration


def _state_topic(bootstrap: str, name: str, partitions: int) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"state-{name}"
    admin.create_topics([NewTopic(topic, partitions, 1, config={"cleanup.policy": "compact"})])[topic].result(10)
    return topic


def test_restore_reads_only_the_home_partitions(kafka_bootstrap: str, unique_name: str) -> None:
    topic = _state_topic(kafka_bootstrap, unique_name, 4)
    store = SnapshotStore(kafka_bootstrap, topic, "api.requests", max_chunk_bytes=1000)
    sizes = {0: 500, 1: 2500, 2: 4500, 3: 100}           # 1, 3, 5 and 1 chunks
    for p, n in sizes.items():
        store.save(p, 10 + p, {"p": p, "blob": "x" * n})
    fresh = SnapshotStore(kafka_bootstrap, topic, "api.requests")
    snaps = fresh.load([2])
    assert list(snaps) == [2] and snaps[2].state == {"p": 2, "blob": "x" * 4500}
    assert snaps[2].next_offset == 12
    assert fresh.last_restore_read == 5 + 1                # its chunks and its manifest, nothing else
    everything = fresh.load([0, 1, 2, 3])
    assert sorted(everything) == [0, 1, 2, 3]
    assert fresh.last_restore_read == 1 + 3 + 5 + 1 + 4


def test_state_written_outside_its_home_is_still_found(kafka_bootstrap: str, unique_name: str) -> None:
    """State written before records had homes (placed by key hash) on a many-partition
    state topic: the restore finds nothing at home and looks through the whole topic."""
    topic = _state_topic(kafka_bootstrap, unique_name, 3)
    legacy = SnapshotStore(kafka_bootstrap, topic, "api.requests")
    legacy._home = lambda p: (p + 1) % 3  # type: ignore[method-assign]  # somewhere else
    legacy.save(0, 42, {"old": True})
    snaps = SnapshotStore(kafka_bootstrap, topic, "api.requests").load([0])
    assert snaps[0].state == {"old": True} and snaps[0].next_offset == 42
