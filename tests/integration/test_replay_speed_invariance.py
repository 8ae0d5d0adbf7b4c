"""Detection runs on event time: the same file replayed at --speed max and --speed 1 gives
the same alerts (same alert_ids). Covers the JSONL source and the real worker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from streams.alerts import decode_alert
from streams.replay.jsonl import JsonLinesSource
from streams.replay.runner import ReplayOptions, replay
from streams.replay.sink import TopicSink
from streams.simulate import build_scenario, write_jsonl

pytestmark = pytest.mark.integration

FAST_WINDOWS = {"XWATCH_WINDOW_S": "10", "XWATCH_ALLOWED_LATENESS_S": "2", "XWATCH_WARMUP_WINDOWS": "2"}


def _alerts(cluster, until_quiet_s: float = 6.0) -> set[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    seen: set[tuple[str, str, str]] = set()
    last_change = time.monotonic()
    while time.monotonic() - last_change < until_quiet_s:
        now = {(a.alert_id, a.status, a.rule) for _, v in cluster.read_topic(cluster.settings.topics.alerts, 1.0)
               for a in [decode_alert(v)] if v}
        if now != seen:
            seen, last_change = now, time.monotonic()
    return seen


def test_speed_max_and_speed_1_give_the_same_alert_ids(cluster, kafka_bootstrap: str,  # type: ignore[no-untyped-def]
                                                       unique_name: str, tmp_path: Path) -> None:
    scenario = build_scenario("demo", seed=21, duration_s=40, accounts=15, total_rate=15.0)
    path = tmp_path / "short.jsonl"
    write_jsonl(scenario, path)
    second = type(cluster)(kafka_bootstrap, f"{unique_name}s1", tmp_path)   # --speed 1
    second.create_topics()
    runs = {"max": cluster, "one": second}
    try:
        for c in runs.values():
            c.start_worker(**FAST_WINDOWS)

        def play(c, speed: float | None) -> None:  # type: ignore[no-untyped-def]
            sink = TopicSink(kafka_bootstrap, c.settings.topics.requests, partitions=2)
            sink.check()
            stats = replay([JsonLinesSource(path)], sink, ReplayOptions(speed=speed))
            assert stats.produced == scenario.labels.events

        slow = threading.Thread(target=play, args=(runs["one"], 1.0))
        slow.start()
        play(runs["max"], None)
        slow.join(120)
        fast_alerts, slow_alerts = _alerts(runs["max"]), _alerts(runs["one"])
    finally:
        for c in runs.values():
            c.stop_all()
    assert any("templated_extraction" == rule for _, _, rule in fast_alerts), fast_alerts
    assert fast_alerts == slow_alerts
