"""Backtest: replay a labelled recording, wait for the worker, score the alerts it raised.

1. Replay the source into the requests topic (as ``xwatch replay`` does).
2. Wait until the detector's consumer group (``<app_id>-detector``) has committed, on every
   partition the replay wrote to, an offset >= that partition's end after the replay minus
   ``lag_tolerance``, and then until no new alert has arrived for ``quiet_s`` (the last
   event-time windows close on the watermark, a little after the last commit). The contract
   has no end-of-stream marker, so committed offsets are the only completion signal.
   The ends are *true* ends, found by reading to end-of-partition: the embedded broker
   reports a high watermark that stops at the start of its last stored batch (hundreds to
   thousands of records short), which would end the wait before the last batch was read.
3. Read the alerts the worker wrote after the replay began (the alert topic is read from
   its end as it was before the replay, so older runs' alerts are not counted).
4. Score them against the labels with ``streams.evaluate`` and print the scorecard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from rich.console import Console

from streams.alerts import Alert, decode_alert
from streams.connection import KafkaConnection, client_config
from streams.labels import read_labels
from streams.replay.batch import Source
from streams.replay.errors import ReplayError
from streams.replay.offsets import true_ends
from streams.replay.report import ReplayProgress, print_summary
from streams.replay.runner import ReplayOptions, ReplayStats, replay
from streams.replay.sink import TopicSink, check_broker, client_logger
from streams.settings import Settings

__all__ = ["AlertCollector", "BacktestResult", "BacktestTimeout", "CommittedOffsets",
           "lagging_partitions", "run_backtest", "wait_until_caught_up"]


class BacktestTimeout(ReplayError):
    """The worker did not catch up in time."""


@dataclass(frozen=True, slots=True)
class BacktestResult:
    stats: ReplayStats
    alerts: list[Alert]
    scorecard: Any                 # whatever streams.evaluate.score_alerts returns
    end_offsets: dict[int, int]    # partition -> true end after the replay (written ones only)
    waited_s: float


def lagging_partitions(ends: dict[int, int], committed: dict[int, int],
                       tolerance: int = 0) -> dict[int, int]:
    """``{partition: events behind}`` for partitions whose commit is short of its end.

    >>> lagging_partitions({0: 100, 1: 50, 2: 10}, {0: 100, 1: 45}, tolerance=5)
    {2: 10}
    >>> lagging_partitions({0: 100}, {0: 101})
    {}
    """
    behind = {p: end - max(0, committed.get(p, 0)) for p, end in ends.items()}
    return {p: n for p, n in behind.items() if n > tolerance}


def wait_until_caught_up(committed: Callable[[], dict[int, int]], ends: dict[int, int],
                         poll_alerts: Callable[[float], int], *, tolerance: int = 0,
                         quiet_s: float = 10.0, timeout_s: float = 600.0,
                         check_every_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                         on_wait: Callable[[dict[int, int], float], None] | None = None) -> float:
    """Block until ``committed()`` covers ``ends``, then until ``poll_alerts`` has been quiet
    for ``quiet_s``; return the seconds waited. ``poll_alerts(t)`` waits up to ``t`` seconds
    and returns how many new alerts came in; ``on_wait(lag, quiet_for)`` reports progress.
    """
    start = last_check = clock()
    lag = lagging_partitions(ends, committed(), tolerance)
    quiet_since: float | None = None
    while True:
        now = clock()
        if lag and now - last_check >= check_every_s:
            lag = lagging_partitions(ends, committed(), tolerance)
            last_check = now
        if not lag and quiet_since is None:
            quiet_since = now
        quiet_for = 0.0 if quiet_since is None else now - quiet_since
        if quiet_since is not None and quiet_for >= quiet_s:
            return now - start
        if now - start > timeout_s:
            detail = ", ".join(f"partition {p}: {n:,} behind" for p, n in sorted(lag.items()))
            raise BacktestTimeout(
                f"the worker did not catch up within {timeout_s:.0f}s "
                f"({detail or 'alerts still arriving'}); is 'xwatch worker' running "
                "with the same --app-id and broker?")
        if on_wait is not None:
            on_wait(lag, quiet_for)
        wait = check_every_s if quiet_since is None else min(check_every_s, quiet_s - quiet_for)
        if poll_alerts(max(0.05, wait)) > 0 and quiet_since is not None:
            quiet_since = clock()


class CommittedOffsets:
    """``fetch()``: a consumer group's committed offsets on some partitions (-1: none).

    It only asks the group coordinator and never subscribes, so it neither joins the group
    nor disturbs the worker's assignment.
    """

    def __init__(self, bootstrap: str | KafkaConnection, group_id: str, topic: str, partitions: Sequence[int],
                 timeout_s: float = 10.0) -> None:
        self.group_id = group_id
        self.timeout_s = timeout_s
        self._tps = [TopicPartition(topic, p) for p in partitions]
        self._consumer = Consumer(client_config(bootstrap, {"group.id": group_id,
                                   "enable.auto.commit": False, "session.timeout.ms": 6000,
                                   "logger": client_logger}))

    def fetch(self) -> dict[int, int]:
        try:
            got = self._consumer.committed(self._tps, timeout=self.timeout_s)
        except KafkaException:
            return {}
        return {tp.partition: (tp.offset if tp.offset >= 0 else -1) for tp in got}

    def close(self) -> None:
        self._consumer.close()


class AlertCollector:
    """Reads the alert topic from where it ended when :meth:`start` ran.

    The topic may not exist yet (the worker creates it): it is looked for again on every
    poll and then read from its beginning. Exact duplicates (same ``alert_id`` and
    ``status``) are dropped, as the contract asks alert consumers to do.
    """

    def __init__(self, bootstrap: str | KafkaConnection, topic: str, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self.alerts: list[Alert] = []
        self.undecodable = 0
        self._seen: set[tuple[str, str]] = set()
        self._admin = check_broker(bootstrap, timeout_s)
        self._consumer = Consumer(client_config(bootstrap, {
            "group.id": f"xwatch-backtest-{time.time_ns()}",
            "enable.auto.commit": False, "session.timeout.ms": 6000, "fetch.wait.max.ms": 50,
            "logger": client_logger}))
        self._assigned = False

    def _exists(self) -> bool:
        return self.topic in self._admin.list_topics(timeout=self.timeout_s).topics

    def start(self) -> None:
        """Remember where the alert topic ends now; later polls read from there."""
        if self._exists():
            ends = true_ends(self.bootstrap, self.topic, self.timeout_s)
            self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in ends.items()])
            self._assigned = True

    def poll(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for alerts; the number of new ones."""
        if not self._assigned:
            if not self._exists():
                time.sleep(timeout_s)
                return 0
            parts = self._admin.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
            self._consumer.assign([TopicPartition(self.topic, p, 0) for p in parts.partitions])
            self._assigned = True
        new = 0
        for msg in self._consumer.consume(10_000, timeout=timeout_s):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise ReplayError(f"reading alerts from {self.topic}: {err.str()}")
                continue
            try:
                alert = decode_alert(msg.value() or b"")
            except Exception:   # msgspec errors: a malformed alert is counted, not fatal
                self.undecodable += 1
                continue
            key = (alert.alert_id, alert.status)
            if key not in self._seen:
                self._seen.add(key)
                self.alerts.append(alert)
                new += 1
        return new

    def close(self) -> None:
        self._consumer.close()


def run_backtest(settings: Settings, source: Source | Sequence[Source], labels_path: str | Path,
                 *, options: ReplayOptions | None = None, console: Console | None = None,
                 topic: str | None = None, timeout_s: float = 600.0, quiet_s: float | None = None,
                 lag_tolerance: int = 0, show_progress: bool = True) -> BacktestResult:
    """Replay ``source``, wait for the worker (group ``settings.group_id``) to catch up,
    collect its alerts and print the scorecard. See the module docstring for the steps."""
    from streams.evaluate import render_scorecard, score_alerts  # written alongside the worker

    options = options or ReplayOptions()
    console = console or Console(soft_wrap=True)
    try:
        labels = read_labels(labels_path)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"cannot read labels {labels_path}: {exc}") from None
    if options.dry_run:
        raise ReplayError("a backtest needs the events produced: drop --dry-run")
    topic = topic or settings.topics.requests
    quiet = quiet_s if quiet_s is not None else max(5.0, 2 * settings.idle_partition_s)
    sink = TopicSink(settings.connection, topic, partitions=settings.partitions)
    sink.check()
    before = true_ends(settings.connection, topic)
    collector = AlertCollector(settings.connection, settings.topics.alerts)
    collector.start()
    try:
        with ReplayProgress(console, "backtest replay", enabled=show_progress) as view:
            stats = replay(source, sink, options, on_progress=view.update, on_invalid=view.invalid)
        print_summary(console, stats, target=topic, dry_run=False, show_invalid=options.show_invalid)
        after = true_ends(settings.connection, topic)
        written = {p: end for p, end in after.items() if end > before.get(p, 0)}
        committed = CommittedOffsets(settings.connection, settings.group_id, topic, sorted(written))
        try:
            with console.status("waiting for the worker") as status:
                def show(lag: dict[int, int], quiet_for: float) -> None:
                    behind = sum(lag.values())
                    status.update(
                        f"waiting for the worker (group {settings.group_id}): "
                        + (f"{behind:,} events behind" if behind else
                           f"caught up, {len(collector.alerts):,} alerts, quiet for {quiet_for:.0f}s"
                           f" of {quiet:.0f}s"))

                waited = wait_until_caught_up(committed.fetch, written, collector.poll, tolerance=lag_tolerance,
                                              quiet_s=quiet, timeout_s=timeout_s, on_wait=show)
        finally:
            committed.close()
        collector.poll(0.5)
        alerts = list(collector.alerts)
    finally:
        collector.close()
    console.print(f"worker caught up after {waited:.1f}s; {len(alerts):,} alerts collected"
                  + (f" ({collector.undecodable} undecodable skipped)" if collector.undecodable else ""))
    scorecard = score_alerts(labels, alerts)
    render_scorecard(scorecard, console)
    return BacktestResult(stats, alerts, scorecard, written, waited)
