"""A Kafka topic between two times as a replay source.

Each partition is read from the first offset at or after ``start`` to the first offset at
or after ``end`` (or its true end), see :mod:`streams.replay.offsets` for how those are
found on Apache Kafka and on the embedded broker. Partitions are merged by record
timestamp, batch by batch: records up to the smallest "latest buffered timestamp" of the
partitions still being read are released in time order, so a paced replay (and the
worker's watermark) sees event time move forward, not one partition after another.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.connection import KafkaConnection, client_config
from streams.replay.batch import RawBatch
from streams.replay.errors import ReplayError
from streams.replay.offsets import OffsetLookup

__all__ = ["PartitionRange", "TopicSource"]

PartitionRange = tuple[int, int]    # [first offset, stop offset)
_Item = tuple[int, int, int, bytes | None]   # (timestamp, partition, offset, value)


def _locator(topic: str, where: list[tuple[int, int]]) -> Callable[[int], str]:
    return lambda i: f"{topic}[{where[i][0]}]@{where[i][1]}"


class TopicSource:
    """Records of ``topic`` with timestamps in ``[start_ms, end_ms)`` (either end open).

    ``lookup`` is ``auto`` (broker answer, verified; binary search when it is wrong),
    ``broker`` or ``scan``. After :meth:`plan`, ``lookup_paths`` says which path answered
    for each partition (``broker``, ``scan``, ``empty`` for an empty partition, or two of
    them joined by ``+`` when start and end were found differently).
    """

    unit = "records"

    def __init__(self, bootstrap: str | KafkaConnection, topic: str, *, start_ms: int | None = None,
                 end_ms: int | None = None, lookup: str = "auto", max_batch: int = 5000,
                 timeout_s: float = 10.0, buffer_limit: int = 50_000) -> None:
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise ValueError("end must be after start")
        self.bootstrap = bootstrap
        self.topic = topic
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.lookup = lookup
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.buffer_limit = buffer_limit
        self.lookup_paths: dict[int, str] = {}
        self.lookup_probes = 0
        self._ranges: dict[int, PartitionRange] | None = None

    @property
    def name(self) -> str:
        return f"topic {self.topic}"

    @property
    def total(self) -> float | None:
        return float(sum(b - a for a, b in self.plan().values()))

    def plan(self) -> dict[int, PartitionRange]:
        """``{partition: (first offset, stop offset)}`` for the time range (computed once)."""
        if self._ranges is not None:
            return self._ranges
        finder = OffsetLookup(self.bootstrap, self.topic, mode=self.lookup, timeout_s=self.timeout_s)
        try:
            ranges: dict[int, PartitionRange] = {}
            for p in finder.partitions():
                low, reported_high = finder.watermarks(p)
                end = finder.true_end(p, reported_high)
                first = low if self.start_ms is None else finder.offset_for(p, self.start_ms, low, end)
                stop = end if self.end_ms is None else finder.offset_for(p, self.end_ms, first, end)
                ranges[p] = (first, max(first, stop))
                paths = {finder.paths[(p, t)] for t in (self.start_ms, self.end_ms) if t is not None}
                if paths:
                    self.lookup_paths[p] = "+".join(sorted(paths))
            self.lookup_probes = finder.probes
        finally:
            finder.close()
        self._ranges = ranges
        return ranges

    def batches(self) -> Iterator[RawBatch]:
        ranges = {p: r for p, r in self.plan().items() if r[0] < r[1]}
        if not ranges:
            return
        from streams.replay.sink import client_logger

        consumer = Consumer(client_config(self.bootstrap, {
            "group.id": f"xwatch-replay-{time.time_ns()}",
            "enable.auto.commit": False, "enable.partition.eof": True, "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 10, "fetch.queue.backoff.ms": 10, "logger": client_logger}))
        try:
            consumer.assign([TopicPartition(self.topic, p, a) for p, (a, _) in ranges.items()])
            yield from self._merge(consumer, ranges)
        finally:
            consumer.close()

    def _merge(self, consumer: Consumer, ranges: dict[int, PartitionRange]) -> Iterator[RawBatch]:
        topic = self.topic
        buffers: dict[int, deque[_Item]] = {p: deque() for p in ranges}
        reading = set(ranges)           # partitions not yet at their stop offset
        paused: set[int] = set()
        emitted = 0
        last_data = time.monotonic()
        while reading or any(buffers.values()):
            if reading:
                msgs = consumer.consume(self.max_batch, timeout=0.2)
                if msgs:
                    last_data = time.monotonic()
                elif time.monotonic() - last_data > self.timeout_s:
                    raise ReplayError(f"no records from {topic} partitions {sorted(reading)} "
                                      f"for {self.timeout_s:.0f}s")
                for msg in msgs:
                    p = msg.partition() or 0
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            self._stop(consumer, reading, p)
                            continue
                        raise ReplayError(f"reading {topic}[{p}]: {err.str()}")
                    if p not in reading:
                        continue
                    off = msg.offset() or 0
                    stop = ranges[p][1]
                    if off >= stop:
                        self._stop(consumer, reading, p)
                        continue
                    buffers[p].append((msg.timestamp()[1], p, off, msg.value()))
                    if off + 1 >= stop:
                        self._stop(consumer, reading, p)
            ready = self._release(buffers, reading)
            self._throttle(consumer, buffers, reading, paused)
            for lo in range(0, len(ready), self.max_batch):
                part = ready[lo:lo + self.max_batch]
                emitted += len(part)
                yield RawBatch([v for _, _, _, v in part],  # type: ignore[misc]  # None: tombstone
                               _locator(topic, [(p, o) for _, p, o, _ in part]), float(emitted))

    def _release(self, buffers: dict[int, deque[_Item]], reading: set[int]) -> list[_Item]:
        """Buffered records that no partition still being read can precede, in time order."""
        cutoff: float = float("inf")
        for p in reading:
            buf = buffers[p]
            if not buf:
                if len(buffers) > 1 and sum(map(len, buffers.values())) < self.buffer_limit:
                    return []          # wait: this partition's next record may be earlier
                continue
            cutoff = min(cutoff, buf[-1][0])
        ready: list[_Item] = []
        for buf in buffers.values():
            while buf and buf[0][0] <= cutoff:
                ready.append(buf.popleft())
        ready.sort(key=lambda item: (item[0], item[1], item[2]))
        return ready

    def _throttle(self, consumer: Consumer, buffers: dict[int, deque[_Item]], reading: set[int],
                  paused: set[int]) -> None:
        """Pause a partition far ahead of the others, resume it once it has drained."""
        for p in reading:
            n = len(buffers[p])
            if p not in paused and n > self.buffer_limit:
                consumer.pause([TopicPartition(self.topic, p)])
                paused.add(p)
            elif p in paused and n < self.buffer_limit // 2:
                consumer.resume([TopicPartition(self.topic, p)])
                paused.discard(p)

    def _stop(self, consumer: Consumer, reading: set[int], p: int) -> None:
        if p in reading:
            reading.discard(p)
            consumer.pause([TopicPartition(self.topic, p)])

    def close(self) -> None:
        pass
