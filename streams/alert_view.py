"""Reading and showing alerts from the alert topic (``xwatch alerts``, the demo)."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition
from rich.console import Console

from streams.alerts import Alert, decode_alert
from streams.connection import KafkaConnection, client_config

__all__ = ["AlertReader", "format_alert", "print_alerts"]

_COLOURS = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def format_alert(a: Alert) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.window_end_ts / 1000))
    colour = _COLOURS.get(a.severity, "white")
    accounts = ", ".join(a.account_ids[:5]) + (f" (+{len(a.account_ids) - 5})" if len(a.account_ids) > 5 else "")
    mark = "FIRING " if a.status == "firing" else "resolved"
    return (f"[{colour}]{mark} {a.severity:<8}[/] [bold]{a.rule}[/] {accounts}  "
            f"score {a.score:.2f} ≥ {a.threshold:g}  window to {when} UTC\n         {a.summary}")


class AlertReader:
    """Reads every partition of the alert topic without a consumer group."""

    def __init__(self, broker: str | KafkaConnection, topic: str, from_end: bool = False) -> None:
        self.topic = topic
        self.skipped = 0
        self._consumer = Consumer(client_config(broker, {"group.id": f"xwatch-alerts-{uuid.uuid4().hex}",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 50}))
        md = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            parts = [0]
        else:
            parts = sorted(md.partitions)
        start = OFFSET_END if from_end else OFFSET_BEGINNING
        self._consumer.assign([TopicPartition(topic, p, start) for p in parts])

    def poll(self, timeout_s: float = 0.2) -> list[Alert]:
        out = []
        for m in self._consumer.consume(1000, timeout_s):
            if m.error() or m.value() is None:
                continue
            try:
                out.append(decode_alert(m.value()))
            except Exception:
                self.skipped += 1
        return out

    def follow(self, stop: threading.Event) -> Iterator[Alert]:
        while not stop.is_set():
            yield from self.poll()

    def close(self) -> None:
        self._consumer.close()


def print_alerts(broker: str | KafkaConnection, topic: str, follow: bool = False, as_json: bool = False,
                 from_end: bool = False, idle_s: float = 3.0,
                 out: Callable[[str], None] | None = None) -> int:
    console = Console()
    emit = out or (print if as_json else console.print)
    try:
        reader = AlertReader(broker, topic, from_end=from_end)
    except KafkaException as exc:
        Console(stderr=True).print(f"[red]cannot read {topic} on {broker}: {exc}[/]")
        return 1
    stop = threading.Event()
    if follow:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from streams.alerts import encode_alert

    n = 0
    last = time.monotonic()
    try:
        while not stop.is_set():
            batch = reader.poll()
            for a in batch:
                emit(encode_alert(a).decode() if as_json else format_alert(a))
                n += 1
            if batch:
                last = time.monotonic()
            elif not follow and time.monotonic() - last >= idle_s:
                break
    finally:
        reader.close()
    if not as_json and not follow:
        Console(stderr=True).print(f"{n} alert(s)" + (f", {reader.skipped} unreadable" if reader.skipped else ""))
    return 0
