"""Partition snapshots on a compacted Kafka topic: versioned plain data, never pickles.

A snapshot is the monitor's ``to_dict()`` (numbers, strings, bytes) plus the input offset
it covers, encoded with msgpack, cut into chunks under ``max_chunk_bytes``. Chunks are
written first under keys unique to the snapshot, then a manifest under the partition's
key (``<topic>/<partition>``) that names them and carries their SHA-256. A restore takes
the newest manifest whose chunks are all present and intact, so a worker killed halfway
through writing falls back to the previous snapshot. Chunks of older snapshots are
tombstoned once a newer manifest is written.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streams.connection import KafkaConnection, client_config
from streams.crash_journal import JournalEntry

__all__ = ["Manifest", "NotAcknowledged", "Snapshot", "SnapshotStore"]

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1


class Manifest(msgspec.Struct, frozen=True):
    v: int
    input_topic: str
    partition: int
    seq: int
    next_offset: int
    chunks: list[str]
    sha256: str
    size: int
    written_at_ms: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    partition: int
    next_offset: int
    seq: int
    state: dict[str, Any]


class NotAcknowledged(RuntimeError):
    """The broker did not acknowledge a write in time (slow or away): try again later."""


class SnapshotStore:
    def __init__(self, bootstrap: str | KafkaConnection, topic: str, input_topic: str,
                 max_chunk_bytes: int = 512 * 1024, producer: Producer | None = None,
                 client_options: dict[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.input_topic = input_topic
        self.max_chunk_bytes = max_chunk_bytes
        self.client_options = dict(client_options or {})    # e.g. the worker's error callback
        self._producer = producer or Producer(client_config(bootstrap, {"linger.ms": 5, **self.client_options,
                                               # in order, even when retried: chunks before their manifest
                                               "enable.idempotence": True,
                                               "message.max.bytes": 2_000_000}))
        self._last_chunks: dict[int, list[str]] = {}
        self._seq: dict[int, int] = {}
        self._state_partitions: int | None = None
        self.last_restore_read = 0          # state records the last restore read

    def _home(self, partition: int) -> int:
        """The state-topic partition that holds an input partition's records: the same
        number, modulo the state topic's partitions (partitioned like the input, a restore
        reads only its own; a one-partition state topic holds everything)."""
        if self._state_partitions is None:
            md = self._producer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if md is None or md.error is not None or not md.partitions:
                raise NotAcknowledged(f"state topic {self.topic} not found")
            self._state_partitions = len(md.partitions)
        return partition % self._state_partitions

    def _manifest_key(self, partition: int) -> str:
        return f"{self.input_topic}/{partition}"

    def _journal_key(self, partition: int) -> str:
        return f"{self.input_topic}/{partition}/journal"

    def save_journal(self, partition: int, entry: JournalEntry, wait: bool = True) -> None:
        """Write a partition's crash journal entry (see :mod:`streams.crash_journal`);
        with ``wait``, return once the broker has it."""
        self._producer.produce(self.topic, partition=self._home(partition), key=self._journal_key(partition),
                               value=msgspec.msgpack.encode(entry))
        if wait:
            remaining = self._producer.flush(30)
            if remaining:
                raise NotAcknowledged(f"journal of partition {partition} not acknowledged")
        else:
            self._producer.poll(0)

    def save(self, partition: int, next_offset: int, state: dict[str, Any]) -> Manifest:
        """Write one partition's snapshot and wait until the broker has it."""
        blob = msgspec.msgpack.encode(state)
        home = self._home(partition)
        seq = self._seq.get(partition, 0) + 1
        self._seq[partition] = seq
        tag = uuid.uuid4().hex[:12]
        keys = []
        for i in range(0, max(len(blob), 1), self.max_chunk_bytes):
            key = f"{self._manifest_key(partition)}/{seq}-{tag}/{i // self.max_chunk_bytes}"
            self._producer.produce(self.topic, partition=home, key=key, value=blob[i:i + self.max_chunk_bytes])
            keys.append(key)
        manifest = Manifest(MANIFEST_VERSION, self.input_topic, partition, seq, next_offset, keys,
                            hashlib.sha256(blob).hexdigest(), len(blob), int(time.time() * 1000))
        self._producer.produce(self.topic, partition=home, key=self._manifest_key(partition),
                               value=msgspec.msgpack.encode(manifest))
        for old in self._last_chunks.get(partition, []):
            self._producer.produce(self.topic, partition=home, key=old, value=None)  # tombstone
        self._last_chunks[partition] = keys
        remaining = self._producer.flush(30)
        if remaining:
            raise NotAcknowledged(f"snapshot of partition {partition} not acknowledged ({remaining} left)")
        return manifest

    def load(self, partitions: list[int], idle_s: float = 0.5,
             timeout_s: float = 60.0) -> dict[int, Snapshot]:
        """Newest intact snapshot of each requested partition (missing: no snapshot)."""
        return self.restore(partitions, idle_s, timeout_s)[0]

    def restore(self, partitions: list[int], idle_s: float = 0.5, timeout_s: float = 60.0,
                ) -> tuple[dict[int, Snapshot], dict[int, JournalEntry]]:
        """Newest intact snapshot and the crash journal of each requested partition
        (missing: none), read from their home partitions of the state topic only. A
        partition with nothing there is looked for once more in the whole topic: state
        written before records had homes (by key hash) is still found."""
        snaps, journals = self._restore(partitions, idle_s, timeout_s, home_only=True)
        if self._state_partitions and self._state_partitions > 1:
            missing = [p for p in partitions if p not in snaps and p not in journals]
            if missing:
                read = self.last_restore_read
                more_snaps, more_journals = self._restore(missing, idle_s, timeout_s, home_only=False)
                snaps.update(more_snaps)
                journals.update(more_journals)
                self.last_restore_read += read
        return snaps, journals

    def _restore(self, partitions: list[int], idle_s: float, timeout_s: float, home_only: bool,
                 ) -> tuple[dict[int, Snapshot], dict[int, JournalEntry]]:
        wanted = {self._manifest_key(p): p for p in partitions}
        journal_keys = {self._journal_key(p): p for p in partitions}
        prefixes = tuple(k + "/" for k in wanted)
        journals: dict[int, JournalEntry] = {}
        manifests: dict[int, Manifest] = {}
        chunks: dict[str, bytes] = {}
        self.last_restore_read = 0
        consumer = Consumer(client_config(self.bootstrap, {"group.id": f"{self.topic}-restore-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "fetch.queue.backoff.ms": 10,
                             "fetch.message.max.bytes": 4_000_000, **self.client_options}))
        try:
            md = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if md is None or md.error is not None or not md.partitions:
                return {}, {}
            self._state_partitions = len(md.partitions)
            homes = {self._home(p) for p in partitions} if home_only else set(md.partitions)
            tps = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(homes)]
            consumer.assign(tps)
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
            pos = {p: -1 for p in ends}
            deadline = time.monotonic() + timeout_s
            last_msg = time.monotonic()
            while time.monotonic() < deadline:
                msgs = consumer.consume(10_000, 0.1)
                for m in msgs:
                    if m.error():
                        continue
                    pos[m.partition()] = m.offset()
                    self.last_restore_read += 1
                    key = (m.key() or b"").decode(errors="replace")
                    if key in journal_keys:
                        journal = _decode_journal(m.value())
                        if journal is None:
                            journals.pop(journal_keys[key], None)
                        else:
                            journals[journal_keys[key]] = journal
                    elif key in wanted and m.value() is not None:
                        man = msgspec.msgpack.decode(m.value(), type=Manifest)
                        manifests[wanted[key]] = man
                    elif key.startswith(prefixes):
                        if m.value() is None:
                            chunks.pop(key, None)
                        else:
                            chunks[key] = m.value()
                if msgs:
                    last_msg = time.monotonic()
                # the embedded broker reports the end short: also wait for a quiet spell
                caught_up = all(pos[p] + 1 >= ends[p] for p in ends)
                if caught_up and time.monotonic() - last_msg >= idle_s:
                    break
        finally:
            consumer.close()
        out: dict[int, Snapshot] = {}
        for p, man in manifests.items():
            if man.v != MANIFEST_VERSION:
                raise ValueError(f"unsupported snapshot manifest version {man.v}")
            parts = [chunks.get(k) for k in man.chunks]
            if any(c is None for c in parts):
                log.warning("snapshot %s of partition %d is incomplete; ignoring it", man.seq, p)
                continue
            blob = b"".join(parts)  # type: ignore[arg-type]
            if hashlib.sha256(blob).hexdigest() != man.sha256:
                log.warning("snapshot %s of partition %d fails its checksum; ignoring it", man.seq, p)
                continue
            state = msgspec.msgpack.decode(blob)
            out[p] = Snapshot(p, man.next_offset, man.seq, state)
            self._seq[p] = max(self._seq.get(p, 0), man.seq)
            self._last_chunks[p] = list(man.chunks)
        return out, journals


def _decode_journal(value: bytes | None) -> JournalEntry | None:
    """A journal entry, or ``None`` for a tombstone or an entry this version cannot read
    (then the partition starts as if nothing were known: it is only a crash-loop guard)."""
    if value is None:
        return None
    try:
        entry = msgspec.msgpack.decode(value, type=JournalEntry)
    except msgspec.MsgspecError as exc:
        log.warning("ignoring an unreadable crash journal entry: %s", exc)
        return None
    return entry if entry.v == 1 else None
