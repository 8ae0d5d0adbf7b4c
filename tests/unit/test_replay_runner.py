"""The replay loop with a fake producer: keys, timestamps, window, rewrite, invalid input,
dry runs and pacing - no broker, no real sleeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from streams.replay.jsonl import JsonLinesSource
from streams.replay.runner import InvalidInput, ReplayOptions, ReplayStats, replay, rewrite_ts

T0 = 1_700_000_000_000


def event(i: int, **over: object) -> bytes:
    ev: dict[str, object] = {
        "event_id": f"e{i}", "ts": T0 + i * 1000, "account_id": f"acct-{i % 3}", "api_key_id": "k",
        "model": "m", "endpoint": "/v1/chat/completions", "status": 200, "prompt_tokens": 10,
        "completion_tokens": 20, "unknown_field": {"kept": True}}
    ev.update(over)
    return msgspec.json.encode(ev)


class FakeProducer:
    def __init__(self, clock: list[float], full_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes, str, int, float]] = []
        self.clock = clock
        self.full_every = full_every
        self.tries = 0
        self.polls = 0

    def produce(self, topic: str, value: bytes, key: str, partition: int, callback: Any,
                on_delivery: Any, timestamp: int) -> None:
        assert partition == -1 and callback is None and on_delivery is None
        self.tries += 1
        if self.full_every and self.tries % self.full_every == 0:
            raise BufferError("queue full")
        self.sent.append((topic, value, key, timestamp, self.clock[0]))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        self.clock[0] += timeout
        return 0


class FakeSink:
    def __init__(self, full_every: int = 0) -> None:
        self.clock = [0.0]
        self.topic = "req"
        self.producer = FakeProducer(self.clock, full_every)
        self.failed = 0
        self.flushed = False

    def flush(self, timeout_s: float = 60.0) -> int:
        self.flushed = True
        return 0


def jsonl(tmp_path: Path, lines: list[bytes], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(sink: FakeSink | None, path: Path, **opts: Any) -> ReplayStats:
    clock = (lambda: sink.clock[0]) if sink else (lambda: 0.0)
    return replay(JsonLinesSource(path, max_batch=4), sink, ReplayOptions(**opts),  # type: ignore[arg-type]
                  clock=clock, wall_clock_ms=lambda: 1_800_000_000_000)


def test_produces_original_bytes_keyed_by_account_with_ts_as_timestamp(tmp_path: Path) -> None:
    lines = [event(i) for i in range(10)]
    lines[3] = event(3, ts="2023-11-14T22:13:23Z")        # RFC 3339 ts: timestamp in ms
    sink = FakeSink(full_every=4)                          # and a full queue now and then
    stats = run(sink, jsonl(tmp_path, lines))
    assert [(v, k, ts) for _, v, k, ts, _ in sink.producer.sent] == [
        (line, f"acct-{i % 3}", T0 + i * 1000) for i, line in enumerate(lines)]
    assert {t for t, *_ in sink.producer.sent} == {"req"}
    assert stats.produced == 10 and stats.invalid == 0 and sink.flushed
    assert (stats.first_ts, stats.last_ts) == (T0, T0 + 9000)


def test_invalid_lines_are_reported_with_line_numbers_first_n_listed_all_counted(tmp_path: Path) -> None:
    lines = [event(0), b"not json", event(2, status=700), b"", event(4), b'{"event_id": 1}',
             event(6, prompt_tokens=-5), event(7)]
    path = jsonl(tmp_path, lines)
    seen: list[InvalidInput] = []
    stats = replay(JsonLinesSource(path), None, ReplayOptions(show_invalid=2, dry_run=True),
                   on_invalid=seen.append)
    assert stats.produced == 3 and stats.invalid == 4 and stats.read == 7   # blank line: not an event
    assert [s.where for s in stats.invalid_samples] == [f"{path}:2", f"{path}:3"]
    assert seen == stats.invalid_samples
    assert stats.invalid_samples[0].reason.startswith("not_json")
    assert stats.invalid_reasons == {"not_json": 1, "out_of_range": 1, "wrong_type": 1,
                                     "negative_tokens": 1}


def test_window_keeps_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    sink = FakeSink()
    stats = run(sink, jsonl(tmp_path, [event(i) for i in range(10)]),
                start_ms=T0 + 2000, end_ms=T0 + 7000)
    assert [ts for *_, ts, _ in sink.producer.sent] == [T0 + i * 1000 for i in range(2, 7)]
    assert stats.outside_window == 5 and stats.produced == 5


def test_dry_run_counts_without_producing_or_pacing(tmp_path: Path) -> None:
    lines = [event(i) for i in range(6)] + [b"{}"]        # 5 s of recording at --speed 1
    clock = [0.0]
    stats = replay(JsonLinesSource(jsonl(tmp_path, lines)), None,
                   ReplayOptions(speed=1.0, dry_run=True, start_ms=T0 + 1000),
                   clock=lambda: clock[0])                   # a paced wait would never end
    assert (stats.produced, stats.invalid, stats.outside_window, stats.read) == (5, 1, 1, 7)


def test_dry_run_option_wins_over_a_sink(tmp_path: Path) -> None:
    sink = FakeSink()
    stats = run(sink, jsonl(tmp_path, [event(i) for i in range(3)]), dry_run=True)
    assert stats.produced == 3 and sink.producer.sent == [] and not sink.flushed


def test_rewrite_time_now_shifts_every_event_and_the_json(tmp_path: Path) -> None:
    lines = [event(i, ts=T0 + i * 1000 if i != 1 else "2023-11-14T22:13:21Z") for i in range(4)]
    sink = FakeSink()
    stats = run(sink, jsonl(tmp_path, lines), rewrite_to="now", start_ms=T0 + 1000)
    now = 1_800_000_000_000
    assert stats.shift_ms == now - (T0 + 1000)
    sent = sink.producer.sent
    assert [ts for *_, ts, _ in sent] == [now, now + 1000, now + 2000]
    for (_, value, key, ts, _), i in zip(sent, (1, 2, 3), strict=True):
        obj = msgspec.json.decode(value)
        assert obj["ts"] == ts and obj["event_id"] == f"e{i}" and key == f"acct-{i % 3}"
        assert obj["unknown_field"] == {"kept": True}
    assert (stats.first_ts, stats.last_ts) == (T0 + 1000, T0 + 3000)   # recorded times


def test_rewrite_to_a_given_time(tmp_path: Path) -> None:
    sink = FakeSink()
    run(sink, jsonl(tmp_path, [event(i) for i in range(2)]), rewrite_to=T0 + 3_600_000)
    assert [ts for *_, ts, _ in sink.producer.sent] == [T0 + 3_600_000, T0 + 3_601_000]


def test_rewrite_keeps_everything_but_ts() -> None:
    raw = b'{"ts":"2023-11-14T22:13:20Z","account_id":"a","flags":["x"],"n":1.5}'
    assert msgspec.json.decode(rewrite_ts(raw, 7)) == {"ts": 7, "account_id": "a",
                                                       "flags": ["x"], "n": 1.5}


def test_speed_sixty_sends_a_minute_of_recording_per_second(tmp_path: Path) -> None:
    lines = [event(0, ts=T0), event(1, ts=T0 + 60_000), event(2, ts=T0 + 60_001),
             event(3, ts=T0 + 180_000)]
    sink = FakeSink()
    run(sink, jsonl(tmp_path, lines), speed=60.0)
    at = [t for *_, t in sink.producer.sent]
    assert [round(x - at[0], 2) for x in at] == [0.0, 1.0, 1.0, 3.0]
    # the wait was spent in producer.poll (serving callbacks), in slices of <= 0.25 s
    assert sink.producer.polls >= 12


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="window is empty"):
        ReplayOptions(start_ms=5, end_ms=5)
    with pytest.raises(ValueError):
        ReplayOptions(speed=0)
    with pytest.raises(ValueError):
        ReplayOptions(rewrite_to="later")  # type: ignore[arg-type]


def test_several_sources_in_order_and_progress_reported(tmp_path: Path) -> None:
    a = jsonl(tmp_path, [event(i) for i in range(3)], "a.jsonl")
    b = jsonl(tmp_path, [event(i) for i in range(3, 5)], "b.jsonl")
    sink = FakeSink()
    reports: list[float] = []
    stats = replay([JsonLinesSource(a), JsonLinesSource(b)], sink, ReplayOptions(),  # type: ignore[arg-type]
                   on_progress=lambda s: reports.append(s.progress))
    assert [msgspec.json.decode(v)["event_id"] for _, v, *_ in sink.producer.sent] == [
        f"e{i}" for i in range(5)]
    assert stats.total == a.stat().st_size + b.stat().st_size == reports[-1]
    assert reports == sorted(reports)
