"""``xwatch demo``: the whole pipeline on one machine, in about a minute.

Starts the embedded broker (unless ``--broker``), a real worker process, plays the ``demo``
scenario (a few hundred honest tenants of very different sizes plus one extraction
campaign) into ``api.requests`` at a speed factor, prints alerts as they arrive on
``abuse.alerts``, and ends with a summary. Exit code 0 when the campaign was caught and
the biggest honest tenant was left alone, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from streams.alert_view import AlertReader, format_alert
from streams.alerts import Alert
from streams.broker import EmbeddedBroker, die_with_parent, free_port
from streams.connection import KafkaConnection, as_connection, client_config
from streams.settings import Settings
from streams.simulate import build_scenario
from streams.simulate_cli import produce_account_records, produce_scenario
from streams.topics import ensure_topics

__all__ = ["parse_metrics", "run_demo", "start_worker_process"]

_BAD_INPUT = [
    b"this is not json",
    b'{"event_id": "bad-1", "ts": 1767225600000, "account_id": "acct-00001"}',
    b'{"event_id": "bad-2", "ts": "yesterday", "account_id": "a", "api_key_id": "k", "model": "m",'
    b' "endpoint": "/v1/chat/completions", "status": 200, "prompt_tokens": 1, "completion_tokens": 1}',
    b'{"event_id": "bad-3", "ts": 1767225600000, "account_id": "a", "api_key_id": "k", "model": "m",'
    b' "endpoint": "/v1/chat/completions", "status": 200, "prompt_tokens": -5, "completion_tokens": 1}',
]


def _label_value(series: str) -> str:
    """'name{reason="late"}' -> 'late'."""
    return series.partition('="')[2].rstrip('"}')


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {name{labels}: value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def start_worker_process(broker: str | KafkaConnection, web_port: int, log_path: Path,
                         extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A real ``xwatch worker`` in its own process (stdout/stderr to ``log_path``); it is
    stopped by the kernel if this process dies first (an interrupted test or demo)."""
    env = {**os.environ, **as_connection(broker).to_env(), "XWATCH_WEB_PORT": str(web_port),
           "XWATCH_SESSION_TIMEOUT_S": "6", "XWATCH_IDLE_PARTITION_S": "2",
           "XWATCH_SNAPSHOT_INTERVAL_S": "5", **(extra_env or {})}   # extra_env wins
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--log-level", "warn"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=die_with_parent)


def fetch_metrics(web_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=2) as r:
        return parse_metrics(r.read().decode())


def wait_healthy(web_port: int, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def run_demo(broker: KafkaConnection | None, speed: float, seed: int, accounts: int, duration_s: int) -> int:
    console = Console()
    embedded: EmbeddedBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="xwatch-demo-"))
    started = time.monotonic()
    try:
        if broker is None:
            with console.status("starting the embedded broker (Tansu)…"):
                embedded = EmbeddedBroker(log_path=workdir / "broker.log")
                broker = as_connection(embedded.start())
            console.print(f"[green]✓[/] embedded broker on {broker}")
        settings = Settings.from_env({}, kafka=broker)
        ensure_topics(settings)
        web_port = free_port()
        worker_log = workdir / "worker.log"
        with console.status("starting the worker (Faust + batch engine)…"):
            worker = start_worker_process(broker, web_port, worker_log)
            if not wait_healthy(web_port, worker):
                console.print(f"[red]the worker did not become healthy; its log: {worker_log}[/]")
                return 1
        console.print(f"[green]✓[/] worker up (metrics: http://127.0.0.1:{web_port}/metrics)")

        start_ts = (int(time.time() * 1000) // 60_000) * 60_000 - duration_s * 1000
        scenario = build_scenario("demo", seed=seed, start_ts=start_ts, duration_s=duration_s,
                                  accounts=accounts)
        labels = scenario.labels
        console.print(f"playing {labels.events:,} events from {len(labels.benign_accounts)} honest "
                      f"tenants (biggest: {labels.biggest_benign_account}) and one extraction "
                      f"campaign, {duration_s // 60} min of event time at {speed:g}x")

        alerts: list[Alert] = []
        stop = threading.Event()
        reader = AlertReader(broker, settings.topics.alerts)

        def show_alerts() -> None:
            for a in reader.follow(stop):
                alerts.append(a)
                console.print(format_alert(a))

        shower = threading.Thread(target=show_alerts, daemon=True)
        shower.start()
        producer = Producer(client_config(broker, {"linger.ms": 50, "log.connection.close": False}))
        produce_account_records(scenario, producer, settings.topics.accounts)
        for raw in _BAD_INPUT:
            producer.produce(settings.topics.requests, key=b"demo-bad-input", value=raw)
        columns = [TextColumn("traffic"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[pos]}")]
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("events", total=labels.events, pos="")

            def update(n: int, ts: int) -> None:
                progress.update(task, completed=n, pos=time.strftime("event time %H:%M", time.gmtime(ts / 1000)))

            produced = produce_scenario(scenario, producer, settings.topics.requests, speed, update)

        with console.status("waiting for the worker to close the last windows…"):
            deadline = time.monotonic() + 60
            counted = 0.0
            while time.monotonic() < deadline:
                m = fetch_metrics(web_port)
                counted = m.get("xwatch_events_counted_total", 0.0)
                if counted >= produced and m.get("xwatch_messages_in_total", 0) >= produced + len(_BAD_INPUT):
                    break
                time.sleep(0.5)
            time.sleep(4.0)   # the idle flush closes the open windows; let their alerts arrive
        stop.set()
        shower.join(5)
        reader.close()
        metrics = fetch_metrics(web_port)
        return _summary(console, labels, alerts, produced, metrics, time.monotonic() - started)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    finally:
        if worker is not None:
            stop_process(worker)
        if embedded is not None:
            embedded.stop()


def _summary(console: Console, labels, alerts: list[Alert], produced: int,  # type: ignore[no-untyped-def]
             metrics: dict[str, float], elapsed_s: float) -> int:
    firing = [a for a in alerts if a.status == "firing"]
    named = {acc for a in firing for acc in a.account_ids}
    table = Table(title="extraction-watch demo", show_header=False)
    table.add_row("events produced", f"{produced:,} (+{len(_BAD_INPUT)} malformed)")
    table.add_row("events counted by the worker", f"{int(metrics.get('xwatch_events_counted_total', 0)):,}")
    dlq = {k: int(v) for k, v in metrics.items() if k.startswith("xwatch_dlq_total")}
    reasons = " ".join(f"{_label_value(k)}={v}" for k, v in dlq.items())
    table.add_row("sent to the DLQ", f"{sum(dlq.values())} {reasons}")
    table.add_row("alerts", f"{len(firing)} firing, {len(alerts) - len(firing)} resolved")
    ok = True
    for c in labels.attacks:
        hit = [acc for acc in c.accounts if acc in named]
        first = min((a.window_end_ts for a in firing if set(a.account_ids) & set(c.accounts)), default=None)
        if hit and first is not None:
            ttd = (first - c.start_ts) / 60_000
            table.add_row(f"campaign {c.name}", f"[green]CAUGHT[/] ({len(hit)}/{len(c.accounts)} accounts, "
                          f"{ttd:.1f} min of event time after it started)")
        else:
            ok = False
            table.add_row(f"campaign {c.name}", "[red]MISSED[/]")
    giant = labels.biggest_benign_account
    giant_hit = giant in named
    ok = ok and not giant_hit
    table.add_row(f"biggest honest tenant ({giant})", "[red]ALERTED (false positive)[/]" if giant_hit
                  else "[green]no alert[/]")
    benign_alerts = [a for a in firing if not set(a.account_ids) & {x for c in labels.attacks for x in c.accounts}]
    table.add_row("alerts on honest tenants", str(len(benign_alerts)))
    table.add_row("wall time", f"{elapsed_s:.0f} s")
    console.print(table)
    return 0 if ok else 1
