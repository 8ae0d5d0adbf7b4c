"""``xwatch simulate``: build a scenario and write it to a file and/or a topic.

Besides the request events and the labels, a scenario has account records (the contract's
optional account stream): they go to ``<stem>.accounts.jsonl`` next to ``--out`` and, when
writing to a broker, to the accounts topic (compacted, created if missing) before any event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from streams.connection import KafkaConnection
from streams.labels import write_labels
from streams.replay.errors import ReplayError
from streams.replay.pacing import Pacer
from streams.replay.sink import TopicSink
from streams.simulate import (
    SCENARIOS,
    Scenario,
    accounts_path_for,
    build_scenario,
    encode_account_records,
    encode_events,
    write_accounts_jsonl,
    write_jsonl,
)

__all__ = ["DEFAULT_ACCOUNTS_TOPIC", "ensure_accounts_topic", "produce_account_records",
           "produce_scenario", "run_simulate"]

DEFAULT_ACCOUNTS_TOPIC = "api.accounts"

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


def produce_account_records(s: Scenario, producer: Producer, topic: str) -> int:
    """Produce the scenario's account records (key = account id) and wait for delivery."""
    n = 0
    for key, value in encode_account_records(s):
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    producer.flush(60)
    return n


def ensure_accounts_topic(broker: str | KafkaConnection, topic: str, partitions: int = 4,
                          timeout_s: float = 10.0) -> None:
    """Create the accounts topic (compacted, as the contract says) when it does not exist."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from streams.connection import client_config

    admin = AdminClient(client_config(broker))
    try:
        if topic in admin.list_topics(timeout=timeout_s).topics:
            return
        future = admin.create_topics(
            [NewTopic(topic, partitions, -1, config={"cleanup.policy": "compact"})])[topic]
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise ReplayError(f"cannot create topic {topic!r} on {broker}: {exc}") from None


def _given(param: str) -> bool:
    """Whether the running click command got ``param`` from the user (not its default);
    True outside click, where every argument is deliberate."""
    import click
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None or param not in ctx.params:
        return True
    return ctx.get_parameter_source(param) not in (ParameterSource.DEFAULT,
                                                   ParameterSource.DEFAULT_MAP)


def run_simulate(scenario: str, list_only: bool, seed: int, duration_s: int | None,
                 accounts: int | None, total_rate: float | None, start_ts: int | None,
                 out: str | None, labels: str | None, broker: str | KafkaConnection | None, topic: str,
                 speed: str, accounts_topic: str | None = None) -> int:
    """``duration_s``, ``accounts`` and ``total_rate``: ``None`` (or a click default the user
    did not give) means the scenario's own default. ``accounts_topic``: default
    ``$XWATCH_TOPIC_ACCOUNTS`` or ``api.accounts``."""
    console = Console(stderr=True)
    if list_only:
        for name in sorted(SCENARIOS):
            spec = SCENARIOS[name]
            console.print(f"{name:16} {spec.duration_s // 60:4d} min  {spec.description}",
                          highlight=False, soft_wrap=True)
        return 0
    duration_s = duration_s if _given("duration_s") else None
    accounts = accounts if _given("accounts") else None
    total_rate = total_rate if _given("total_rate") else None
    accounts_topic = (accounts_topic or os.environ.get("XWATCH_TOPIC_ACCOUNTS")
                      or DEFAULT_ACCOUNTS_TOPIC)
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
    for target in (out, labels):
        if target:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                console.print(f"[red]cannot create the folder for {target}: {exc}[/]")
                return 2
    if out:
        n = write_jsonl(s, out)
        console.print(f"wrote {n:,} events to {out}")
        accounts_path = accounts_path_for(out)
        n = write_accounts_jsonl(s, accounts_path)
        console.print(f"wrote {n:,} account records to {accounts_path}")
    write_labels(s.labels, labels_path)
    console.print(f"wrote labels to {labels_path} "
                  f"({len(s.labels.attacks)} campaigns, {len(s.labels.confounders)} confounders)")
    if broker:
        sink = TopicSink(broker, topic)
        try:
            sink.check()
            ensure_accounts_topic(broker, accounts_topic)
        except ReplayError as exc:
            console.print(f"[red]{exc}[/]")
            return 1
        n = produce_account_records(s, sink.producer, accounts_topic)
        if sink.failed:
            console.print(f"[red]{sink.failed} account records were not delivered: {sink.first_error}[/]")
            return 1
        console.print(f"produced {n:,} account records to {accounts_topic}")
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
