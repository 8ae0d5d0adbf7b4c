"""``xwatch simulate``: build a scenario and write it to a file and/or a topic."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from streams.labels import write_labels
from streams.replay.errors import ReplayError
from streams.replay.pacing import Pacer
from streams.replay.sink import TopicSink
from streams.simulate import SCENARIOS, Scenario, build_scenario, encode_events, write_jsonl

__all__ = ["produce_scenario", "run_simulate"]

_FILE_START_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: files are reproducible byte for byte


def parse_speed(text: str | float | None) -> float | None:
    """``max`` (or None) -> None: no pacing; otherwise a positive factor."""
    if text is None or str(text).lower() == "max":
        return None
    value = float(text)
    if value <= 0:
        raise ValueError("speed must be a positive number or 'max'")
    return value


def produce_scenario(s: Scenario, producer: Producer, topic: str, speed: float | None,
                     on_progress: Callable[[int, int], None] | None = None) -> int:
    """Produce the scenario's events (key = account, timestamp = ts), paced by ``speed``."""
    pacer = Pacer(speed, sleep=lambda secs: (producer.poll(0), time.sleep(secs)))
    due = -1 << 62 if speed is not None else 1 << 62
    n = 0
    for key, ts, value in encode_events(s):
        if ts > due:
            due = pacer.wait(ts)
        while True:
            try:
                producer.produce(topic, key=key, value=value, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 2000 == 0:
            producer.poll(0)
            if on_progress is not None:
                on_progress(n, ts)
    producer.flush(60)
    if on_progress is not None:
        on_progress(n, int(s.labels.end_ts))
    return n


def run_simulate(scenario: str, list_only: bool, seed: int, duration_s: int, accounts: int,
                 total_rate: float, start_ts: int | None, out: str | None, labels: str | None,
                 broker: str | None, topic: str, speed: str) -> int:
    console = Console(stderr=True)
    if list_only:
        for name in sorted(SCENARIOS):
            console.print(name)
        return 0
    if not out and not broker:
        console.print("[red]nothing to write to:[/] give --out FILE and/or --broker HOST:PORT")
        return 2
    try:
        factor = parse_speed(speed)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    if start_ts is None:
        start_ts = (int(time.time() * 1000) // 60_000) * 60_000 if broker and not out else _FILE_START_TS
    try:
        s = build_scenario(scenario, seed=seed, start_ts=start_ts, duration_s=duration_s,
                           accounts=accounts, total_rate=total_rate)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    labels_path = Path(labels) if labels else (
        Path(out).with_name(Path(out).name.split(".")[0] + ".labels.json") if out
        else Path(f"{scenario}-{seed}.labels.json"))
    if out:
        n = write_jsonl(s, out)
        console.print(f"wrote {n:,} events to {out}")
    write_labels(s.labels, labels_path)
    console.print(f"wrote labels to {labels_path} "
                  f"({len(s.labels.attacks)} campaigns, {len(s.labels.confounders)} confounders)")
    if broker:
        sink = TopicSink(broker, topic)
        try:
            sink.check()
        except ReplayError as exc:
            console.print(f"[red]{exc}[/]")
            return 1
        columns = [TextColumn("producing"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[pos]}"), TimeRemainingColumn()]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("events", total=s.labels.events, pos="")

            def update(n: int, ts: int) -> None:
                pos = time.strftime("%H:%M:%S", time.gmtime(ts / 1000))
                progress.update(task, completed=n, pos=f"event time {pos}")

            n = produce_scenario(s, sink.producer, topic, factor, update)
        if sink.failed:
            console.print(f"[red]{sink.failed} events were not delivered: {sink.first_error}[/]")
            return 1
        console.print(f"produced {n:,} events to {topic} on {broker}")
    return 0
