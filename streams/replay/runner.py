"""The replay loop: sources -> validate -> event-time window -> rewrite -> pace -> produce.

The hot path does per event only what must be per event: one typed msgspec decode (with
:class:`EventDecoder`'s verdict, see ``validate.py``: what the tool accepts the worker accepts), two
comparisons for the window, one for pacing, and one ``produce`` of the *original* bytes
(no re-encode unless ``ts`` is rewritten). The key is ``account_id``, the Kafka timestamp
is the event's ``ts``. Everything else - invalid input, waiting, progress - is per batch
or on a rare path.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from streams.replay.batch import Source
from streams.replay.errors import ReplayError
from streams.replay.pacing import FAR_FUTURE_MS, Pacer
from streams.replay.sink import TopicSink
from streams.replay.validate import EventValidator

__all__ = ["InvalidInput", "ReplayOptions", "ReplayStats", "replay", "rewrite_ts"]

_any_json = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def rewrite_ts(raw: bytes, ts_ms: int) -> bytes:
    """``raw`` with its ``ts`` set to ``ts_ms`` (epoch ms); every other field is kept as is.

    >>> rewrite_ts(b'{"ts":"2023-11-14T22:13:20Z","x":{"y":[1]},"prompt":"hi"}', 5)
    b'{"ts":5,"x":{"y":[1]},"prompt":"hi"}'
    """
    obj = _any_json.decode(raw)
    obj["ts"] = ts_ms
    return _encode(obj)


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What to replay and how fast. Times are epoch ms of *recorded* event time.

    ``rewrite_to``: ``"now"`` (first replayed event gets the wall-clock time when it is
    sent) or an epoch-ms time; every event is shifted by the same amount.
    """

    speed: float | None = None             # None: as fast as the broker takes it
    start_ms: int | None = None            # window: start <= ts < end
    end_ms: int | None = None
    rewrite_to: Literal["now"] | int | None = None
    show_invalid: int = 20                 # how many invalid inputs to keep and report one by one
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise ValueError("speed must be positive, or None for max")
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError("the window is empty: end must be after start")
        if self.show_invalid < 0:
            raise ValueError("show_invalid must be >= 0")
        if isinstance(self.rewrite_to, str) and self.rewrite_to != "now":
            raise ValueError("rewrite_to must be 'now' or epoch ms")


@dataclass(frozen=True, slots=True)
class InvalidInput:
    where: str      # file:line, file:row N, topic[partition]@offset
    reason: str


@dataclass(slots=True)
class ReplayStats:
    """Counters of one replay; ``produced`` counts events handed to the producer (or, in a
    dry run, events that would have been)."""

    produced: int = 0
    invalid: int = 0
    outside_window: int = 0
    failed: int = 0               # delivery failures the producer reported
    undelivered: int = 0          # still queued when the final flush gave up
    first_ts: int | None = None   # recorded event time of the first / latest produced event
    last_ts: int | None = None
    shift_ms: int = 0             # added to every ts by --rewrite-time
    progress: float = 0.0         # source units done (bytes, rows or records)
    total: float | None = None    # source units in all sources, when known
    source: str = ""              # the source being read
    started: float = 0.0          # clock readings
    finished: float | None = None
    behind_s: float = 0.0         # pacing: how late the latest paced event was
    invalid_reasons: Counter[str] = field(default_factory=Counter)
    invalid_samples: list[InvalidInput] = field(default_factory=list)

    @property
    def read(self) -> int:
        return self.produced + self.invalid + self.outside_window

    def elapsed_s(self, now: float | None = None) -> float:
        end = self.finished if self.finished is not None else (time.monotonic() if now is None else now)
        return max(1e-9, end - self.started)

    def rate(self, now: float | None = None) -> float:
        return self.produced / self.elapsed_s(now)


ProgressHook = Callable[[ReplayStats], None]
InvalidHook = Callable[[InvalidInput], None]


def _discard(*_: object) -> None:
    return None


def replay(sources: Source | Sequence[Source], sink: TopicSink | None,
           options: ReplayOptions | None = None, *,
           clock: Callable[[], float] = time.monotonic,
           wall_clock_ms: Callable[[], int] | None = None,
           on_progress: ProgressHook | None = None,
           on_invalid: InvalidHook | None = None,
           flush_timeout_s: float = 60.0) -> ReplayStats:
    """Replay ``sources`` in order into ``sink`` (``None`` or ``options.dry_run``: count only).

    Invalid inputs are skipped and counted; the first ``options.show_invalid`` are kept in
    ``stats.invalid_samples`` and passed to ``on_invalid`` as they are met.
    """
    options = options or ReplayOptions()
    source_list: list[Source] = [sources] if not isinstance(sources, Sequence) else list(sources)
    dry = options.dry_run or sink is None
    stats = ReplayStats(started=clock())
    totals = [s.total for s in source_list]
    stats.total = None if any(t is None for t in totals) else float(sum(t or 0 for t in totals))
    report: ProgressHook = on_progress or _discard
    show = options.show_invalid

    def note_invalid(where: str, reason: str, code: str) -> None:
        stats.invalid += 1
        stats.invalid_reasons[code] += 1
        if len(stats.invalid_samples) < show:
            item = InvalidInput(where, reason)
            stats.invalid_samples.append(item)
            if on_invalid is not None:
                on_invalid(item)

    if dry:   # count only: nothing is produced, nothing is paced
        produce: Callable[..., object] = _discard
        poll: Callable[[float], object] = _discard
        topic = ""
        pace_sleep: Callable[[float], object] = _discard
    else:
        assert sink is not None
        produce, poll, topic = sink.producer.produce, sink.producer.poll, sink.topic

        def pace_sleep(seconds: float) -> None:   # wait while serving producer callbacks
            poll(seconds)
            report(stats)

    pacer = Pacer(None if dry else options.speed, clock=clock, sleep=pace_sleep)
    lo = -FAR_FUTURE_MS if options.start_ms is None else options.start_ms
    hi = FAR_FUTURE_MS if options.end_ms is None else options.end_ms
    rewriting = options.rewrite_to is not None
    shift: int | None = None
    due = pacer.due_ms
    check_batch = EventValidator().check_batch
    units_before = 0.0
    try:
        for source in source_list:
            stats.source = source.name
            batch_progress = 0.0
            for batch in source.batches():
                for where, reason in batch.rejects:
                    note_invalid(where, reason, reason.split(":", 1)[0])
                values = batch.values
                events, rejected = check_batch(values)
                for i, rejection in rejected:
                    note_invalid(batch.locate(i), rejection.reason, rejection.code)
                n = 0
                last = stats.last_ts
                try:
                    for raw, ev in zip(values, events, strict=True):
                        if ev is None:
                            continue
                        ts: int = ev.ts   # epoch ms: the validator converted RFC 3339
                        if ts < lo or ts >= hi:
                            stats.outside_window += 1
                            continue
                        out_ts = ts
                        if rewriting:
                            if shift is None:
                                target = options.rewrite_to
                                if target == "now":
                                    target = wall_clock_ms() if wall_clock_ms else int(time.time() * 1000)
                                shift = int(target) - ts  # type: ignore[arg-type]
                                stats.shift_ms = shift
                            out_ts = ts + shift
                            raw = rewrite_ts(raw, out_ts)
                        if out_ts > due:   # rare: the first event, or one not due yet
                            stats.produced += n
                            n = 0
                            stats.last_ts = last
                            if stats.first_ts is None:
                                stats.first_ts = ts
                            due = pacer.wait(out_ts)
                            stats.behind_s = pacer.behind_s
                        try:   # positional (topic, value, key, partition, callback,
                            #        on_delivery, timestamp): keyword parsing costs ~0.5 us
                            produce(topic, raw, ev.account_id, -1, None, None, out_ts)
                        except BufferError:
                            _produce_when_room(produce, poll, topic, raw, ev.account_id, out_ts)
                        n += 1
                        last = ts
                finally:
                    stats.produced += n
                    stats.last_ts = last
                poll(0)
                batch_progress = batch.progress
                stats.progress = units_before + batch_progress
                report(stats)
            units_before += batch_progress if source.total is None else float(source.total)
            stats.progress = units_before
    finally:
        if not dry:
            assert sink is not None
            stats.undelivered = sink.flush(flush_timeout_s)
            stats.failed = sink.failed
        stats.finished = clock()
        report(stats)
    return stats


def _produce_when_room(produce: Callable[..., object], poll: Callable[[float], object],
                       topic: str, raw: bytes, key: str, ts: int) -> None:
    """The producer's queue is full: serve delivery callbacks until it takes the message."""
    deadline = time.monotonic() + 120.0
    while True:
        poll(0.01)
        try:
            produce(topic, raw, key, -1, None, None, ts)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise ReplayError("the producer queue stayed full for 2 minutes: "
                                  "is the broker still there?") from None
