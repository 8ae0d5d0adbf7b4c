"""``xwatch``: the command line. Heavy modules are imported only by the command that runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from streams.kafka_options import kafka_options

if TYPE_CHECKING:
    from streams.connection import KafkaConnection

__all__ = ["main"]

_CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CTX)
@click.version_option(package_name="extraction-watch")
def main() -> None:
    """extraction-watch: catch LLM API extraction (distillation) campaigns in a Kafka stream.

    \b
    Quick start (no Kafka needed):
      xwatch demo          embedded broker + worker + simulated traffic with a campaign
    Run against your Kafka:
      xwatch worker --broker kafka:9092
      xwatch alerts --broker kafka:9092 --follow

    Every option can also be set by environment: XWATCH_<OPTION> (see each --help).
    """


@main.command(context_settings=_CTX)
@kafka_options(default_broker="127.0.0.1:9092")
@click.option("--app-id", envvar="XWATCH_APP_ID", default="xwatch", show_default=True,
              help="Application id: prefix of the consumer group and internal topics.")
@click.option("--partitions", envvar="XWATCH_PARTITIONS", type=int, default=4, show_default=True,
              help="Partitions for topics the worker creates when they are missing.")
@click.option("--replication-factor", envvar="XWATCH_REPLICATION_FACTOR", type=int, default=-1,
              show_default=True, help="Replication factor of topics the worker creates when they "
              "are missing; -1: the broker's default (default.replication.factor).")
@click.option("--window", "window_s", envvar="XWATCH_WINDOW_S", type=int, default=60,
              show_default=True, help="Per-account window length in seconds of event time.")
@click.option("--lateness", "allowed_lateness_s", envvar="XWATCH_ALLOWED_LATENESS_S", type=int,
              default=30, show_default=True, help="Allowed lateness (s) before events go to the DLQ as late.")
@click.option("--connect-deadline", "connect_deadline_s", envvar="XWATCH_CONNECT_DEADLINE_S", type=float,
              default=300.0, show_default=True,
              help="Seconds a starting worker waits for Kafka (retrying with backoff) before it gives up.")
@click.option("--instance-id", envvar="XWATCH_INSTANCE_ID", default="", show_default=False,
              help="Static group membership id (Kafka group.instance.id), unique per replica and "
              "stable across its restarts, e.g. the pod name: a restart within the session timeout "
              "keeps its partitions without a rebalance. Empty: dynamic membership.")
@click.option("--web-port", envvar="XWATCH_WEB_PORT", type=int, default=6066, show_default=True,
              help="Port of /health and /metrics.")
@click.option("--log-level", envvar="XWATCH_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["crit", "error", "warn", "info", "debug"]))
def worker(**opts: Any) -> None:
    """Run the detector worker (a Faust worker) until SIGTERM or Ctrl-C.

    It consumes request events from the requests topic in batches, keeps per-account
    statistics on event time, and writes alerts to the alert topic and bad input to the
    DLQ. State is snapshotted to the compacted topic <app-id>-state and restored on start;
    run as many workers as the requests topic has partitions to scale out.
    """
    from streams.app import run_worker
    from streams.settings import Settings

    try:
        settings = Settings.from_env(kafka=opts.pop("broker"), **opts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run_worker(settings))


@main.command(context_settings=_CTX)
@click.option("--port", type=int, default=9092, show_default=True,
              help="Loopback port to listen on (0: a free one).")
def broker(port: int) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) in the foreground.

    For trying things out and tests only: data lives in memory and is gone on exit.
    """
    import signal
    import threading

    from streams.broker import BrokerStartError, EmbeddedBroker

    b = EmbeddedBroker(port=port)
    try:
        bootstrap = b.start()
    except BrokerStartError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"embedded broker listening on {bootstrap} (log: {b.log_path}); Ctrl-C to stop")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    finally:
        b.stop()
        click.echo("broker stopped")


@main.command(context_settings=_CTX)
@kafka_options()
@click.option("--topic", envvar="XWATCH_TOPIC_ALERTS", default="abuse.alerts", show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new alerts (Ctrl-C to stop).")
@click.option("--json", "as_json", is_flag=True, help="Print each alert as one JSON line.")
@click.option("--from-end", is_flag=True, help="Only alerts written from now on.")
def alerts(broker: KafkaConnection | None, topic: str, follow: bool, as_json: bool, from_end: bool) -> None:
    """Print alerts from the alert topic (from the beginning unless --from-end)."""
    from streams.alert_view import print_alerts

    _require_broker(broker)
    assert broker is not None
    sys.exit(print_alerts(broker, topic, follow=follow, as_json=as_json, from_end=from_end))


@main.command(context_settings=_CTX)
@click.option("--scenario", default="demo", show_default=True,
              help="Scenario name (see --list).")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--duration", "duration_s", type=int, default=None,
              help="Event-time length in seconds (default: the scenario's, see --list).")
@click.option("--accounts", type=int, default=None,
              help="Honest tenants (default: the scenario's, 300 for most).")
@click.option("--rate", "total_rate", type=float, default=None,
              help="Mean honest requests/s over all tenants (default: the scenario's).")
@click.option("--start", "start_ts", type=int, default=None,
              help="Event time of the first event, epoch ms (default: now for a topic, a fixed date for files).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write events to this JSONL file (.gz ok).")
@click.option("--labels", type=click.Path(dir_okay=False),
              help="Write the labels here (default: next to --out as *.labels.json).")
@kafka_options("Write events to this Kafka instead of (or as well as) a file.")
@click.option("--topic", envvar="XWATCH_TOPIC_REQUESTS", default="api.requests", show_default=True)
@click.option("--accounts-topic", envvar="XWATCH_TOPIC_ACCOUNTS", default="api.accounts",
              show_default=True, help="Where the account records go (written before the events).")
@click.option("--speed", default="max", show_default=True,
              help="Event time per wall time when writing to a topic: a factor (60 = an hour a minute) or 'max'.")
def simulate(**opts: Any) -> None:
    """Write labelled synthetic traffic (JSONL events + labels) to a file or a topic.

    \b
    Examples:
      xwatch simulate --out demo.jsonl                  events + demo.labels.json
      xwatch simulate --broker localhost:9092 --speed 60
    """
    from streams.simulate_cli import run_simulate

    sys.exit(run_simulate(**opts))


@main.command(context_settings=_CTX)
@kafka_options("Use this Kafka instead of starting the embedded broker.")
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="Event time per wall time: 60 plays the 30-minute scenario in 30 s.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--accounts", type=int, default=300, show_default=True)
@click.option("--duration", "duration_s", type=int, default=1800, show_default=True)
def demo(**opts: Any) -> None:
    """Everything on one machine: embedded broker, a worker, simulated traffic with an
    extraction campaign; alerts are shown as they fire, then a summary."""
    from streams.demo import run_demo

    sys.exit(run_demo(**opts))


def _require_broker(broker: object | None) -> None:
    if not broker:
        raise click.UsageError("no broker given: use --broker HOST:PORT or set XWATCH_BROKER "
                               "(or run `xwatch demo` to try it without Kafka)")


main.add_command(__import__("streams.evaluate", fromlist=["evaluate_command"]).evaluate_command)
main.add_command(__import__("streams.detect", fromlist=["detect_command"]).detect_command)
main.add_command(__import__("streams.replay.cli", fromlist=["replay_command"]).replay_command)


if __name__ == "__main__":
    main()
