"""The firehose path: batch consume -> decode/validate -> columns -> per-partition monitors.

Runs in one thread inside the Faust worker (see :mod:`streams.app`). Everything per request
is done in batches with confluent-kafka, msgspec and numpy; only per-account windows reach
Python-level detector code.

Delivery guarantees
-------------------
* The consumer group spreads ``api.requests`` partitions over workers. On assignment a
  partition's monitor is restored from its latest snapshot and consumption resumes at the
  offset that snapshot covers, so no event is counted twice after a restart or rebalance
  (SIGTERM writes a final snapshot; after SIGKILL the work since the last snapshot is
  redone from the same state).
* Alerts and DLQ entries are flushed before each snapshot, so nothing the snapshot covers
  is lost. Work redone after a crash may emit an alert again with the same ``alert_id``.
* The duplicate-``event_id`` index is rebuilt after a restore by re-reading the input
  from the offset the snapshot names, not stored in the snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from operator import is_not

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from models.coordination import SummaryBatch
from models.incidents import Finding
from models.monitor import MonitorConfig, PartitionMonitor
from streams.account_registry import AccountRegistry
from streams.alerts import Alert, encode_alert
from streams.columns import ColumnBuilder
from streams.connection import client_config
from streams.crash_journal import JournalEntry, PartitionGuard
from streams.kafka_probe import Reachability, quiet_client_logger
from streams.pipeline import encode_summaries, fold_batch
from streams.records import Rejection, dead_letter
from streams.settings import Settings
from streams.state_store import NotAcknowledged, SnapshotStore

__all__ = ["DetectionEngine", "EngineMetrics", "finding_to_alert", "monitor_config"]

log = logging.getLogger(__name__)


@dataclass
class EngineMetrics:
    """Process-wide figures for /metrics (no account ids here: unbounded cardinality)."""

    messages_in: int = 0
    events_counted: int = 0
    internal_errors: Counter[str] = field(default_factory=Counter)   # caught bugs, by input
    account_records_rejected: Counter[str] = field(default_factory=Counter)   # by reason
    careful_partitions: int = 0   # partitions processed carefully after a crash
    duplicates: int = 0
    late_events: int = 0
    dlq: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)     # by status
    batches: int = 0
    snapshots: int = 0
    restores: int = 0
    partitions: int = 0
    tracked_accounts: int = 0
    watermark_ms: int = -1
    busy_seconds: float = 0.0
    last_batch_at: float = 0.0
    loop_at: float = 0.0          # monotonic time the consume loop last went round
    partitions_assigned: int = 0  # partitions taken on, over all rebalances
    partitions_revoked: int = 0   # partitions given up (revoked or lost)


def _split_by_partition(msgs: list[Message]) -> tuple[dict[int, list[Message]], dict[int, int],
                                                     dict[int, int]]:
    """Messages by partition (order kept), plus where each partition's EOF marker and last
    message sit in ``msgs``. librdkafka hands out runs of one partition, so a batch without
    errors is cut at run boundaries instead of being walked message by message."""
    n = len(msgs)
    errors = list(map(Message.error, msgs))
    by_partition: dict[int, list[Message]] = {}
    eof_at: dict[int, int] = {}
    last_at: dict[int, int] = {}
    # not errors.count(None): KafkaError's == against None raises inside librdkafka's binding
    if not any(map(is_not, errors, repeat(None))):
        parts = np.array(list(map(Message.partition, msgs)), dtype=np.int64)
        bounds = [0, *(np.flatnonzero(parts[1:] != parts[:-1]) + 1).tolist(), n]
        for a, b in zip(bounds, bounds[1:], strict=False):
            p = int(parts[a])
            by_partition.setdefault(p, []).extend(msgs[a:b])
            last_at[p] = b - 1
        return by_partition, eof_at, last_at
    for i, (m, err) in enumerate(zip(msgs, errors, strict=True)):
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                eof_at[m.partition()] = i
            else:
                log.warning("consume error: %s", err)
            continue
        by_partition.setdefault(m.partition(), []).append(m)
        last_at[m.partition()] = i
    return by_partition, eof_at, last_at


def finding_to_alert(f: Finding, detected_at_ms: int) -> Alert:
    return Alert(
        alert_id=f.alert_id, status=f.status, rule=f.rule, severity=f.severity,  # type: ignore[arg-type]
        account_ids=list(f.account_ids), score=round(float(f.score), 6),
        threshold=float(f.threshold), window_start_ts=f.window_start_ts,
        window_end_ts=f.window_end_ts, detected_at=detected_at_ms, summary=f.summary,
        evidence=f.evidence,
    )


def monitor_config(settings: Settings, population_view: bool = True) -> MonitorConfig:
    """The partition monitors' configuration, from the worker's settings. With
    ``population_view`` (the worker runs the cross-account agent), findings on untrusted
    accounts travel through it; without, the engine emits them itself."""
    return MonitorConfig(
        window_ms=settings.window_s * 1000,
        allowed_lateness_ms=settings.allowed_lateness_s * 1000,
        warmup_windows=settings.warmup_windows,
        cooldown_windows=settings.cooldown_windows,
        dedup_horizon_ms=settings.dedup_horizon_s * 1000,
        newcomers_via_view=population_view,
    )


class DetectionEngine:
    """Owns the consumer, the producers and one :class:`PartitionMonitor` per partition."""

    def __init__(self, settings: Settings, on_alert: Callable[[Alert], None] | None = None,
                 population_view: bool = False) -> None:
        self.settings = settings
        self.metrics = EngineMetrics()
        self.on_alert = on_alert
        self.monitors: dict[int, PartitionMonitor] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._next_offset: dict[int, int] = {}
        self._last_data: dict[int, float] = {}
        self._dirty: set[int] = set()
        self._preview_at: dict[int, tuple[int | None, float]] = {}   # p -> (until, when)
        self._guards: dict[int, PartitionGuard] = {}     # partitions in careful mode
        self._at_end: set[int] = set()   # partitions caught up with their log end (EOF seen)
        self._builder = ColumnBuilder()
        self._config = monitor_config(settings, population_view)
        self.registry = AccountRegistry(settings.connection, settings.topics.accounts, settings.app_id)
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._store: SnapshotStore | None = None
        self._last_snapshot = time.monotonic()
        self.error: BaseException | None = None
        self.reach = Reachability("worker")      # one log line per outage, not per retry
        self._snapshots_postponed = 0

    # -- lifecycle -------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once partitions have been assigned (and restored) at least once."""
        return self._ready.wait(timeout)

    def run(self) -> None:
        """The loop; returns after :meth:`stop` with a final snapshot written."""
        s = self.settings
        quiet = {"logger": quiet_client_logger, "error_cb": self.reach.on_error}
        self._producer = Producer(client_config(s.connection, {
            "linger.ms": 20, "batch.num.messages": 10_000, "enable.idempotence": True, **quiet,
        }))
        self._store = SnapshotStore(s.connection, s.state_topic, s.topics.requests, client_options=quiet)
        self.registry.start()
        self._consumer = Consumer(client_config(s.connection, {
            "group.id": s.group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": int(s.session_timeout_s * 1000),
            "heartbeat.interval.ms": max(500, int(s.session_timeout_s * 1000) // 3),
            "fetch.queue.backoff.ms": 10, "fetch.wait.max.ms": 10,
            # cooperative: a rebalance moves only the partitions that change owner; the
            # others go on being processed, with no snapshot and no restore
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.partition.eof": True,   # idle means caught up, never "not served lately"
            # static membership: a restarted pod with the same instance id gets its
            # partitions back within the session timeout, without a rebalance
            **({"group.instance.id": s.instance_id} if s.instance_id else {}),
            **quiet,
        }))
        self._consumer.subscribe([s.topics.requests], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_lost)
        try:
            while not self._stop.is_set():
                self.metrics.loop_at = time.monotonic()
                msgs = self._consumer.consume(s.batch_max, s.batch_timeout_s)
                t0 = time.perf_counter()
                if msgs:
                    self.reach.reached()
                    self._process(msgs)
                self._tick()
                if msgs:
                    self.metrics.busy_seconds += time.perf_counter() - t0
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.registry.stop()
        try:
            if self._consumer is not None and self.monitors:
                self._snapshot(sorted(self.monitors))
                self._stopped_cleanly(sorted(self.monitors))
        finally:
            if self._consumer is not None:
                self._consumer.close()
            if self._producer is not None:
                self._producer.flush(10)

    # -- rebalance callbacks (run inside consume()) ----------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._store is not None
        wanted = [tp.partition for tp in partitions]
        snapshots, journals = self._store.restore(wanted) if wanted else ({}, {})
        assigned = []
        for p in wanted:
            self._resume_guard(p, journals.get(p))
            snap = snapshots.get(p)
            if snap is not None:
                mon = PartitionMonitor.from_dict(snap.state, profiles=self.registry.get)
                self._rebuild_dedup(p, mon, snap.next_offset)
                offset = snap.next_offset
                self.metrics.restores += 1
                log.info("partition %d restored at offset %d (watermark %d, %d accounts)",
                         p, offset, mon.watermark, len(mon.accounts))
            else:
                mon = PartitionMonitor(self._config, profiles=self.registry.get)
                offset = OFFSET_BEGINNING
            self.monitors[p] = mon
            self._last_data[p] = time.monotonic()
            if snap is not None:
                self._next_offset[p] = snap.next_offset
            assigned.append(TopicPartition(self.settings.topics.requests, p, offset))
        consumer.incremental_assign(assigned)     # cooperative: only what changed owner
        self.metrics.partitions = len(self.monitors)
        self.metrics.partitions_assigned += len(assigned)
        if assigned:
            log.info("took partitions %s (now %s)", wanted, sorted(self.monitors))
        self._ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [tp.partition for tp in partitions if tp.partition in self.monitors]
        if gone:
            self._snapshot(gone)
            self._stopped_cleanly(gone)
        for p in gone:
            self._forget(p)
        self.metrics.partitions_revoked += len(gone)
        if gone:
            log.info("gave up partitions %s (kept %s)", gone, sorted(self.monitors))
        self._unassign(consumer, partitions)

    @staticmethod
    def _unassign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_unassign(partitions)

    # -- crash loops (see streams.crash_journal) -------------------------------------------
    def _resume_guard(self, p: int, previous: JournalEntry | None) -> None:
        assert self._store is not None
        guard = PartitionGuard.resume(previous, self.settings.poison_after_crashes)
        self._store.save_journal(p, guard.entry(None))
        if guard.careful:
            self._guards[p] = guard
            log.warning("partition %d: the worker before this one died while processing it; "
                        "processing it carefully until the next snapshot (suspects %s, %d crashes)",
                        p, guard.suspect, guard.crashes)
        self.metrics.careful_partitions = len(self._guards)

    def _stopped_cleanly(self, partitions: list[int]) -> None:
        assert self._store is not None
        for p in partitions:
            try:
                self._store.save_journal(p, JournalEntry(clean=True))
            except Exception as exc:   # the next start is merely careful for nothing
                log.warning("could not mark partition %d stopped cleanly: %s", p, exc)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = [tp.partition for tp in partitions if tp.partition in self.monitors]
        for p in lost:
            self._forget(p)
        # losing a partition (a session that timed out) is not a crash: whoever takes it
        # next need not process it carefully (the crash journal guards against poison)
        self._stopped_cleanly(lost)
        self.metrics.partitions_revoked += len(lost)
        log.warning("lost partitions %s (session timed out?); kept %s", lost, sorted(self.monitors))
        self._unassign(consumer, partitions)

    def _forget(self, p: int) -> None:
        self.monitors.pop(p, None)
        self._guards.pop(p, None)
        self._preview_at.pop(p, None)
        self._at_end.discard(p)
        self._next_offset.pop(p, None)
        self._dirty.discard(p)
        self.metrics.partitions = len(self.monitors)

    def _rebuild_dedup(self, p: int, mon: PartitionMonitor, end_offset: int) -> None:
        """Re-read [dedup_from_offset, end_offset) to restore the event_id index."""
        start = mon.dedup_rebuild_from
        if start is None or start >= end_offset:
            return
        c = Consumer(client_config(self.settings.connection, {
            "group.id": f"{self.settings.group_id}-dedup", "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10}))
        try:
            c.assign([TopicPartition(self.settings.topics.requests, p, start)])
            done = False
            idle_since = time.monotonic()
            while not done and time.monotonic() - idle_since < 5.0:
                msgs = c.consume(10_000, 0.2)
                if msgs:
                    idle_since = time.monotonic()
                batch = []
                for m in msgs:
                    if m.error():
                        continue
                    if m.offset() >= end_offset:
                        done = True
                        break
                    batch.append(m)
                    if m.offset() == end_offset - 1:
                        done = True
                decoded = self._builder.decode(list(map(Message.value, batch)))
                if len(decoded):
                    cols = decoded.columns
                    offsets = np.array([batch[i].offset() for i in decoded.kept], dtype=np.int64)
                    mon.dedup.check_and_add(cols.dedup_key, cols.ts, offsets)
        finally:
            c.close()

    # -- the batch path -----------------------------------------------------------------
    def _process(self, msgs: list[Message]) -> None:
        by_partition, eof_at, last_at = _split_by_partition(msgs)
        now_wall = time.monotonic()
        for p, batch in by_partition.items():
            mon = self.monitors.get(p)
            if mon is None:
                continue
            guard = self._guards.get(p)
            if guard is None:
                self._fold_isolated(mon, batch)
            else:
                self._fold_carefully(p, mon, batch, guard)
            self._next_offset[p] = batch[-1].offset() + 1
            self._dirty.add(p)
            self._last_data[p] = now_wall
            self._preview_at.pop(p, None)
            self._at_end.discard(p)
        for p, i in eof_at.items():   # at the end only if nothing of p came after its EOF
            if i > last_at.get(p, -1):
                self._at_end.add(p)
        self.metrics.messages_in += sum(map(len, by_partition.values()))   # not EOF markers or errors
        self.metrics.batches += 1
        self.metrics.last_batch_at = time.time()

    def _fold_isolated(self, mon: PartitionMonitor, batch: list[Message]) -> None:
        """:meth:`_fold`, where no exception stops the engine: a batch that raises is retried
        message by message, and a message that still raises goes to the DLQ with reason
        ``internal_error`` and the exception's class. A bug is logged loudly and counted;
        events the failed attempt had already counted are recognised as duplicates on the
        retry, so none is counted twice."""
        try:
            self._fold(mon, batch)
            return
        except Exception as exc:
            self.metrics.internal_errors["requests"] += 1
            log.error("internal error on %s[%d] offsets %d..%d: %r; retrying message by message",
                      batch[0].topic(), batch[0].partition(), batch[0].offset(),
                      batch[-1].offset(), exc, exc_info=True)
        for m in batch:
            try:
                self._fold(mon, [m])
            except Exception as exc:
                self.metrics.internal_errors["requests"] += 1
                log.error("internal error on %s[%d]@%d: %r; message dead-lettered", m.topic(),
                          m.partition(), m.offset(), exc, exc_info=True)
                self._dead_letter(Rejection("internal_error", f"{type(exc).__name__}: {exc}"[:500]), m)

    def _fold_carefully(self, p: int, mon: PartitionMonitor, batch: list[Message],
                        guard: PartitionGuard) -> None:
        """After a crash: the offsets in flight go to the journal before each chunk, and a
        message the journal convicts is dead-lettered instead of processed."""
        assert self._store is not None
        poison = guard.poison
        if poison is not None and any(m.offset() == poison for m in batch):
            m = next(m for m in batch if m.offset() == poison)
            log.error("%s[%d]@%d was in flight in %d crashes of the worker in a row: "
                      "dead-lettered, not processed again", m.topic(), p, poison, guard.crashes)
            self._dead_letter(Rejection("internal_error", f"the worker crashed {guard.crashes} "
                                        "times in a row while processing this message"), m)
            guard.dead_lettered()
            batch = [m for m in batch if m.offset() != poison]
        at = {m.offset(): m for m in batch}
        for chunk in guard.chunks(list(at)):
            self._store.save_journal(p, guard.entry((chunk[0], chunk[-1])))
            self._fold_isolated(mon, [at[o] for o in chunk])
        self._store.save_journal(p, guard.entry(None), wait=False)

    def _fold(self, mon: PartitionMonitor, batch: list[Message]) -> None:
        """Step one partition's batch (:func:`~streams.pipeline.fold_batch`), send what comes out."""
        offsets = np.array(list(map(Message.offset, batch)), dtype=np.int64)
        out = fold_batch(mon, self._builder, list(map(Message.value, batch)), offsets,
                         self.registry.get)
        for i, rejection in out.rejected:
            self._dead_letter(rejection, batch[i])
        for i, ts in out.late:
            self._dead_letter(Rejection("late", f"event time {ts} is behind the watermark "
                                        f"{mon.watermark} by more than the allowed lateness"),
                              batch[i])
        self.metrics.events_counted += out.counted
        self.metrics.duplicates += out.duplicates
        self.metrics.late_events += len(out.late)
        self._emit(out.findings)
        self._send_summaries(out.summaries)

    def _dead_letter(self, r: Rejection, m: Message) -> None:
        assert self._producer is not None
        value = dead_letter(r, m.topic() or "", m.partition() or 0, m.offset() or 0, m.value())
        self._produce(self.settings.topics.dlq, m.key(), value)
        self.metrics.dlq[r.code] += 1

    def _produce(self, topic: str, key: bytes | str | None, value: bytes) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def _forward_summaries(self, summaries: list[SummaryBatch]) -> None:
        self._send_summaries(encode_summaries(summaries, self.registry.get))

    def _send_summaries(self, encoded: list[tuple[str, bytes]]) -> None:
        """Account summaries go to the population view (a Faust agent)."""
        topic = self.settings.coordination_topic
        for key, value in encoded:
            self._produce(topic, key, value)

    def _emit(self, findings: list[Finding]) -> None:
        if not findings:
            return
        now_ms = int(time.time() * 1000)
        for f in findings:
            alert = finding_to_alert(f, now_ms)
            self._produce(self.settings.topics.alerts, alert.key, encode_alert(alert))
            self.metrics.alerts[alert.status] += 1
            if self.on_alert is not None:
                self.on_alert(alert)
        assert self._producer is not None
        self._producer.poll(0)

    # -- time-driven work: idle partitions, snapshots ---------------------------------------
    def _tick(self) -> None:
        s = self.settings
        now = time.monotonic()
        self.metrics.account_records_rejected = Counter(self.registry.rejected)
        self.metrics.internal_errors["accounts"] = self.registry.internal_errors
        if self.monitors:
            marks = [m.watermark for m in self.monitors.values()]
            global_wm = max(marks)
            self.metrics.watermark_ms = global_wm
            self.metrics.tracked_accounts = sum(len(m.accounts) for m in self.monitors.values())
            # A partition is idle once it has reached its log end and stayed quiet; one that
            # merely was not served for a while (a backlog elsewhere) is not.
            idle_parts = {p for p in self.monitors if p in self._at_end
                          and now - self._last_data.get(p, 0.0) >= s.idle_partition_s}
            all_idle = len(idle_parts) == len(self.monitors)
            for p in sorted(idle_parts):
                self._preview_idle(p, None if all_idle else global_wm, now)
        if self._dirty and now - self._last_snapshot >= s.snapshot_interval_s:
            self._snapshot(sorted(self._dirty))

    def _preview_idle(self, p: int, until: int | None, now: float) -> None:
        """Quiet input must not hold alerts back, nor invent event time: send what closing
        the partition's open windows (all of them when the whole input is quiet, else up to
        the busiest partition's watermark) would fire, and keep them open (see
        :meth:`PartitionMonitor.preview`). Once per quiet spell, or again when the busiest
        partition has moved a window on (at most once per ``idle_partition_s``)."""
        mon = self.monitors[p]
        last = self._preview_at.get(p)
        if until is not None and until <= mon.watermark:
            return
        if last is not None:
            last_until, when = last
            if last_until is None or now - when < self.settings.idle_partition_s:
                return
            if until is not None and until - last_until < self._config.window_ms:
                return
        preview = mon.preview(until)
        self._preview_at[p] = (until, now)
        self._emit(preview.findings)
        self._forward_summaries(preview.summaries)
        self._dirty.add(p)

    def _snapshot(self, partitions: list[int]) -> None:
        assert self._producer is not None and self._store is not None
        # alerts and DLQ entries first: the snapshot covers them. Kafka slow or away: keep
        # everything dirty and try again at the next interval, never crash over it
        if self._producer.flush(30):
            self._postpone_snapshot("alerts and dead letters not yet acknowledged")
            return
        commits = []
        for p in partitions:
            mon = self.monitors.get(p)
            nxt = self._next_offset.get(p)
            if mon is None or nxt is None:
                continue
            try:
                self._store.save(p, nxt, mon.to_dict())
            except NotAcknowledged as exc:
                self._postpone_snapshot(str(exc))
                return
            commits.append(TopicPartition(self.settings.topics.requests, p, nxt))
            self.metrics.snapshots += 1
            guard = self._guards.get(p)
            if guard is not None and guard.passed(nxt):
                del self._guards[p]
                self._store.save_journal(p, guard.entry(None))
                log.info("partition %d: past the crash, processing normally again", p)
        self.metrics.careful_partitions = len(self._guards)
        if commits and self._consumer is not None:
            try:
                self._consumer.commit(offsets=commits, asynchronous=False)
            except Exception as exc:  # commit is informational (lag); snapshots are the truth
                log.warning("offset commit failed: %s", exc)
        self._dirty.difference_update(partitions)
        self._last_snapshot = time.monotonic()
        self.reach.reached()
        if self._snapshots_postponed:
            log.warning("snapshots written again (%d postponed while Kafka was away)",
                        self._snapshots_postponed)
            self._snapshots_postponed = 0

    def _postpone_snapshot(self, why: str) -> None:
        if not self._snapshots_postponed:
            log.warning("snapshot postponed: %s; retrying every %.0fs", why,
                        self.settings.snapshot_interval_s)
        self._snapshots_postponed += 1
        self._last_snapshot = time.monotonic()
