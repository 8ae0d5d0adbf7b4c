"""Finding offsets by time in a partition: the broker's answer, checked, or a binary search.

``offsets_for_times`` is the right tool on Apache Kafka. The embedded broker (Tansu)
answers it wrongly (offset 0 for any time) and reports a high watermark that stops at the
start of the last stored batch, so this module

* finds a partition's true end by reading from the reported watermark to end-of-partition
  (:func:`true_end`; on Apache Kafka that read is empty),
* checks the broker's answer by reading the record it names and the one before it
  (:func:`broker_answer_holds`), and
* falls back to a binary search over offsets that reads one record per probe
  (:func:`first_offset_at_or_after`), ~log2(n) small fetches per partition.

The binary search assumes record timestamps do not decrease within a partition (true for
data written with ``ts`` as the Kafka timestamp, as gateways and ``xwatch replay`` do); a
few records out of order at the edges can be missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.connection import KafkaConnection, client_config
from streams.replay.errors import ReplayError

__all__ = ["LOOKUP_MODES", "OffsetLookup", "Probe", "Record", "broker_answer_holds",
           "first_offset_at_or_after", "true_ends"]

Record = tuple[int, int]                  # (offset, timestamp ms) of one stored record
Probe = Callable[[int], Record | None]    # first record at offset >= o, None past the end
LOOKUP_MODES = ("auto", "broker", "scan")
Path = Literal["broker", "scan", "empty"]


def first_offset_at_or_after(probe: Probe, low: int, high: int, ts_ms: int) -> int:
    """Lowest offset in ``[low, high]`` whose record has timestamp >= ``ts_ms`` (``high``
    when none has), for timestamps that do not decrease with the offset.

    >>> stamps = {0: 10, 1: 20, 3: 20, 4: 35}        # offset 2 is a gap (compacted away)
    >>> def probe(o):
    ...     return next(((k, v) for k, v in sorted(stamps.items()) if k >= o), None)
    >>> [first_offset_at_or_after(probe, 0, 5, t) for t in (0, 11, 20, 21, 35, 36)]
    [0, 1, 1, 4, 4, 5]
    """
    lo, hi = low, high
    while lo < hi:
        mid = (lo + hi) // 2
        rec = probe(mid)
        if rec is None or rec[1] >= ts_ms:
            hi = mid
        else:
            lo = rec[0] + 1
    return lo


def broker_answer_holds(probe: Probe, low: int, end: int, ts_ms: int, offset: int) -> bool:
    """Whether ``offset`` really is the first record with timestamp >= ``ts_ms``.

    ``offset`` is the broker's answer (``end`` for "none"): the record there must be at
    or after ``ts_ms`` and the record at ``offset - 1`` must exist and be earlier.

    >>> stamps = [10, 20, 30]
    >>> probe = lambda o: (o, stamps[o]) if o < len(stamps) else None
    >>> [broker_answer_holds(probe, 0, 3, 20, o) for o in (0, 1, 2, 3)]
    [False, True, False, False]
    >>> broker_answer_holds(probe, 0, 3, 31, 3)
    True
    """
    if not low <= offset <= end:
        return False
    if offset < end:
        rec = probe(offset)
        if rec is None or rec[1] < ts_ms:
            return False
    if offset > low:
        before = probe(offset - 1)
        # no record right before it (a compacted offset, a transaction marker): the answer
        # cannot be checked with one read, so it is not trusted
        if before is None or before[0] != offset - 1 or before[1] >= ts_ms:
            return False
    return True


class OffsetLookup:
    """Offsets by time for the partitions of one topic, through one unsubscribed consumer.

    ``mode``: ``broker`` trusts ``offsets_for_times``; ``scan`` only binary-searches;
    ``auto`` asks the broker and keeps its answer only if :func:`broker_answer_holds`.
    ``paths`` records which path answered each lookup, for tests and the progress line.
    """

    def __init__(self, bootstrap: str | KafkaConnection, topic: str, *, mode: str = "auto",
                 timeout_s: float = 10.0, config: dict[str, object] | None = None) -> None:
        if mode not in LOOKUP_MODES:
            raise ValueError(f"offset lookup must be one of {', '.join(LOOKUP_MODES)}")
        self.topic = topic
        self.mode = mode
        self.timeout_s = timeout_s
        self.paths: dict[tuple[int, int], Path] = {}   # (partition, ts) -> path that answered
        self.probes = 0
        from streams.replay.sink import client_logger

        self._consumer = Consumer(client_config(bootstrap, {
            "group.id": f"xwatch-replay-lookup-{time.time_ns()}",
            "enable.auto.commit": False, "enable.partition.eof": True, "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 10, "logger": client_logger, **(config or {})}))

    def close(self) -> None:
        self._consumer.close()

    def partitions(self) -> list[int]:
        try:   # all topics: asking for one by name makes some brokers (Tansu) create it
            md = self._consumer.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise ReplayError(f"cannot read metadata of topic {self.topic!r}: {exc}") from None
        meta = md.topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ReplayError(f"topic {self.topic!r} does not exist")
        return sorted(meta.partitions)

    def watermarks(self, partition: int) -> tuple[int, int]:
        """``(low, reported high)``; on the embedded broker ``high`` may be short."""
        lo, hi = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=self.timeout_s)
        return int(lo), int(hi)

    def probe(self, partition: int, offset: int) -> Record | None:
        """The first record at ``offset`` or later, ``None`` at the end of the partition."""
        self.probes += 1
        self._consumer.assign([TopicPartition(self.topic, partition, offset)])
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                for msg in self._consumer.consume(1, timeout=0.5):
                    err = msg.error()
                    if err is None:
                        return msg.offset() or 0, msg.timestamp()[1]
                    if err.code() == KafkaError._PARTITION_EOF:
                        return None
                    raise ReplayError(f"reading {self.topic}[{partition}]@{offset}: {err.str()}")
        finally:
            self._consumer.unassign()
        raise ReplayError(f"no answer reading {self.topic}[{partition}]@{offset} "
                          f"within {self.timeout_s:.0f}s")

    def true_end(self, partition: int, reported_high: int) -> int:
        """One past the last offset really stored: read from the reported high watermark to
        end-of-partition (the embedded broker's watermark stops at its last batch)."""
        self._consumer.assign([TopicPartition(self.topic, partition, max(0, reported_high))])
        end = reported_high
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                for msg in self._consumer.consume(10_000, timeout=0.5):
                    err = msg.error()
                    if err is None:
                        end = max(end, (msg.offset() or 0) + 1)
                    elif err.code() == KafkaError._PARTITION_EOF:
                        return max(end, msg.offset() or 0)
                    else:
                        raise ReplayError(f"reading the end of {self.topic}[{partition}]: {err.str()}")
        finally:
            self._consumer.unassign()
        raise ReplayError(f"no end-of-partition from {self.topic}[{partition}] "
                          f"within {self.timeout_s:.0f}s")

    def offset_for(self, partition: int, ts_ms: int, low: int, end: int) -> int:
        """First offset in ``[low, end]`` with a record timestamp >= ``ts_ms``."""
        if low >= end:
            self.paths[(partition, ts_ms)] = "empty"
            return end
        probe: Probe = lambda o: self.probe(partition, o)  # noqa: E731
        if self.mode in ("auto", "broker"):
            answer = self._broker_offset(partition, ts_ms, end)
            if answer is not None and (self.mode == "broker"
                                       or broker_answer_holds(probe, low, end, ts_ms, answer)):
                self.paths[(partition, ts_ms)] = "broker"
                return answer
            if self.mode == "broker":
                raise ReplayError(f"the broker gave no offset for {self.topic}[{partition}] at "
                                  f"{ts_ms}; try --offset-lookup scan")
        self.paths[(partition, ts_ms)] = "scan"
        return first_offset_at_or_after(probe, low, end, ts_ms)

    def _broker_offset(self, partition: int, ts_ms: int, end: int) -> int | None:
        try:
            (tp,) = self._consumer.offsets_for_times(
                [TopicPartition(self.topic, partition, ts_ms)], timeout=self.timeout_s)
        except KafkaException:
            return None
        if tp.error is not None:
            return None
        return end if tp.offset < 0 else int(tp.offset)   # -1: no record that late


def true_ends(bootstrap: str | KafkaConnection, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """``{partition: one past the last stored offset}`` of ``topic`` - not the reported high
    watermark, which the embedded broker reports short."""
    lookup = OffsetLookup(bootstrap, topic, timeout_s=timeout_s)
    try:
        return {p: lookup.true_end(p, lookup.watermarks(p)[1]) for p in lookup.partitions()}
    finally:
        lookup.close()
