"""``xwatch evaluate``: score alerts against scenario labels; the shell around ``models.scoring``.

Alerts come from a JSONL file (one alert per line, as on ``abuse.alerts``) or from the alert
topic, read from the beginning to its current end. Labels come from ``xwatch simulate``.
The figures and their rules are in :mod:`models.scoring`; here they are only read, converted
and printed. Tests call :func:`score_alerts`.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click
import msgspec

from models.scoring import AlertRecord, Campaign, CampaignScore, Goals, Scorecard, format_ms, score
from streams.alerts import Alert, decode_alert
from streams.connection import KafkaConnection, client_config
from streams.kafka_options import kafka_options
from streams.labels import ScenarioLabels, read_labels

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "AlertSourceError",
    "LoadedAlerts",
    "evaluate",
    "evaluate_command",
    "load_alerts",
    "read_alert_file",
    "read_alert_topic",
    "render_scorecard",
    "score_alerts",
]

KAFKA_SCHEME = "kafka://"


class AlertSourceError(RuntimeError):
    """The alert topic could not be read: no such topic, or the broker failed."""


class LoadedAlerts(NamedTuple):
    alerts: list[Alert]
    skipped: int  # lines or messages that were not an alert


# --- reading -------------------------------------------------------------------------------


def load_alerts(
    source: str | Path, broker: str | KafkaConnection | None = None, *, idle_timeout_s: float = 5.0
) -> LoadedAlerts:
    """Alerts from ``source``: a JSONL file, ``-`` for stdin, ``kafka://HOST:PORT/TOPIC``, or —
    with ``broker`` given and no such file — a topic name on that broker."""
    source = str(source)
    if source.startswith(KAFKA_SCHEME):
        address, _, topic = source[len(KAFKA_SCHEME):].partition("/")
        if not address or not topic:
            raise ValueError(f"{source}: expected kafka://HOST:PORT/TOPIC")
        return read_alert_topic(address, topic, idle_timeout_s=idle_timeout_s)
    if source == "-":
        return read_alert_file(sys.stdin.buffer)
    if broker and not Path(source).exists():
        return read_alert_topic(broker, source, idle_timeout_s=idle_timeout_s)
    with open(source, "rb") as f:
        return read_alert_file(f)


def read_alert_file(lines: Iterable[bytes]) -> LoadedAlerts:
    """One alert JSON per line; blank lines are ignored, undecodable ones skipped and counted."""
    alerts: list[Alert] = []
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            alerts.append(decode_alert(line))
        except msgspec.DecodeError:
            skipped += 1
    return LoadedAlerts(alerts, skipped)


def read_alert_topic(
    broker: str | KafkaConnection,
    topic: str,
    *,
    idle_timeout_s: float = 5.0,
    consumer: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> LoadedAlerts:
    """Every alert on ``topic`` from the beginning to the end it has now.

    All partitions are assigned (no group membership, nothing committed). Reading stops one
    quiet second after each partition has reached its high watermark (asked again once
    reached; the quiet second catches messages past a watermark reported short, as the
    embedded broker can), or after ``idle_timeout_s`` without a message. ``consumer`` replaces the confluent-kafka consumer
    (tests); it is not closed here. Raises :class:`AlertSourceError` when the topic cannot
    be read.
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    own = consumer is None
    if own:
        from confluent_kafka import Consumer

        consumer = Consumer(client_config(broker, {
            "group.id": f"xwatch-evaluate-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }))
    try:
        meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            reason = meta.error if meta is not None and meta.error is not None else "no partitions"
            raise AlertSourceError(f"topic {topic!r} on {broker}: {reason}")
        partitions = sorted(meta.partitions)

        def watermarks() -> dict[int, tuple[int, int]]:
            out = {}
            for p in partitions:
                marks = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)
                out[p] = (int(marks[0]), int(marks[1])) if marks else (0, 0)
            return out

        marks = watermarks()
        high = {p: h for p, (_, h) in marks.items()}
        position = {p: lo for p, (lo, _) in marks.items()}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

        alerts: list[Alert] = []
        skipped = 0
        settle_s = min(1.0, idle_timeout_s)
        reached = False  # every partition at its watermark, asked twice
        last_message = clock()
        while True:
            if not reached and all(position[p] >= high[p] for p in partitions):
                high = {p: h for p, (_, h) in watermarks().items()}
                reached = all(position[p] >= high[p] for p in partitions)
            msg = consumer.poll(0.2)
            if msg is None:
                quiet = clock() - last_message
                if quiet >= idle_timeout_s or (reached and quiet >= settle_s):
                    break
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise AlertSourceError(f"{topic}[{msg.partition()}]: {err}")
            last_message = clock()
            position[msg.partition()] = max(position[msg.partition()], msg.offset() + 1)
            value = msg.value()
            try:
                if value is None:
                    raise msgspec.DecodeError("empty message")
                alerts.append(decode_alert(value))
            except msgspec.DecodeError:
                skipped += 1
        return LoadedAlerts(alerts, skipped)
    except KafkaException as exc:
        raise AlertSourceError(f"{broker}: {exc}") from exc
    finally:
        if own:
            consumer.close()


# --- scoring ----------------------------------------------------------------------------------


def evaluate(labels: ScenarioLabels, alerts: list[Alert]) -> Scorecard:
    """The scorecard of ``alerts`` against ``labels``."""
    campaigns = [
        Campaign(c.name, c.kind, tuple(c.accounts), c.start_ts, c.end_ts, c.confounder)
        for c in labels.campaigns
    ]
    records = [
        AlertRecord(
            a.alert_id, a.status, a.rule, tuple(a.account_ids), a.window_start_ts,
            a.window_end_ts, a.severity,
        )
        for a in alerts
    ]
    return score(campaigns, labels.benign_accounts, labels.start_ts, labels.end_ts, records)


def score_alerts(
    labels: ScenarioLabels | str | Path, alerts: Iterable[Alert] | str | Path
) -> Scorecard:
    """Test helper: :func:`evaluate` that also takes a labels path and an alerts JSONL path.

    Undecodable alert lines are an error here, not something to skip: a test wants to know.
    """
    if not isinstance(labels, ScenarioLabels):
        labels = read_labels(labels)
    if isinstance(alerts, str | Path):
        loaded = load_alerts(alerts)
        if loaded.skipped:
            raise ValueError(f"{alerts}: {loaded.skipped} line(s) are not alerts")
        alerts = loaded.alerts
    return evaluate(labels, list(alerts))


# --- printing ---------------------------------------------------------------------------------


def render_scorecard(
    scorecard: Scorecard, console: Console, *, goals: Goals | None = None, skipped: int = 0
) -> None:
    """Per-campaign table, the totals and the goals missed, for a person to read."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.MINIMAL, pad_edge=False,
        caption="below the line: confounders (honest traffic; any alert on them is false)",
        caption_justify="left",
    )
    table.add_column("campaign", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("caught", justify="center", no_wrap=True)
    table.add_column("named", justify="right", no_wrap=True)
    table.add_column("time to detect", justify="right", no_wrap=True)
    table.add_column("rules", overflow="fold")
    for c in scorecard.attacks:
        mark = "[green]✓[/]" if c.caught else "[red]✗[/]"
        table.add_row(c.name, c.kind, mark, *_figures(c))
    if scorecard.confounders:
        table.add_section()
        for c in scorecard.confounders:
            mark = "[red]alerted[/]" if c.caught else "[green]clean[/]"
            table.add_row(c.name, c.kind, mark, *_figures(c))
    console.print(table)

    s = scorecard
    median = s.median_time_to_detect_ms
    console.print(
        f"alerts: {s.alerts} (true {s.true_alerts}, false {s.false_alerts}); "
        f"precision {s.precision:.2f}"
    )
    by_rule = ", ".join(f"{rule} {n}" for rule, n in s.false_alerts_by_rule)
    console.print(
        f"false alerts per 1,000 benign account-hours: {s.false_alerts_per_1k_account_hours:.2f} "
        f"({s.false_alerts} over {s.benign_account_hours:,.1f} account-hours"
        + (f"; {by_rule})" if by_rule else ")")
    )
    console.print(f"confounder alerts: {s.confounder_alerts} (pages: {s.confounder_pages}); "
                  f"firing alerts per incident: {s.alerts_per_incident:.2f}")
    if median is not None:
        console.print(f"median time to detect: {format_ms(median)} (event time, slow kinds excluded)")
    if skipped:
        console.print(f"[yellow]skipped {skipped} line(s)/message(s) that are not alerts[/]")
    failed = s.meets_goals(goals)
    if failed:
        console.print(f"[red]goals missed ({len(failed)}):[/]")
        for line in failed:
            console.print(f"  [red]✗[/] {line}", highlight=False)
    else:
        console.print("[green]✓ all goals met[/]")


def _figures(c: CampaignScore) -> tuple[str, str, str]:
    ttd = "–" if c.time_to_detect_ms is None else format_ms(c.time_to_detect_ms)
    return f"{c.accounts_named}/{c.accounts_total}", ttd, ", ".join(c.rules) or "–"


# --- command ----------------------------------------------------------------------------------


@click.command(
    "evaluate",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("labels", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("alerts", required=False)
@click.option(
    "--scenario", metavar="NAME",
    help="Instead of LABELS and ALERTS: build this scenario (e.g. wild) for every seed of "
         "--seeds, run the worker's detection path on it offline and report over the seeds.",
)
@click.option("--seeds", default="1-10", show_default=True, metavar="A-B|A,B,..",
              help="Seeds for --scenario.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes for --scenario (one seed each at a time).")
@click.option("--per-seed", is_flag=True, help="With --scenario: also print one line per seed.")
@kafka_options("Read ALERTS as a topic name on this broker (host:port or kafka://host:port); "
               "a file of that name wins.")
@click.option("--json", "as_json", is_flag=True, help="Print the scorecard as JSON.")
@click.option("--fail-on-goals", is_flag=True, help="Exit with status 1 when a goal is missed.")
@click.option(
    "--idle-timeout", type=float, default=5.0, show_default=True, metavar="SECONDS",
    help="Stop reading a topic after this long without a message.",
)
def evaluate_command(
    labels: Path | None, alerts: str | None, scenario: str | None, seeds: str, jobs: int,
    per_seed: bool, broker: KafkaConnection | None, as_json: bool, fail_on_goals: bool,
    idle_timeout: float,
) -> None:
    """Score ALERTS against the scenario LABELS written by `xwatch simulate`, or, with
    --scenario, score detection over a range of seeds.

    With --scenario NAME --seeds A-B, each seed's scenario is built, run through the
    worker's own decode -> monitor -> population-view path offline (as `xwatch detect`)
    and scored; the table pools the seeds per campaign kind (caught on how many seeds,
    members named, time to detect) and over all (precision, false alerts per 1,000 benign
    account-hours, pages on confounders, firing alerts per incident).

    ALERTS is a JSONL file of alerts (one per line, `-` for stdin), an alert topic as
    kafka://HOST:PORT/TOPIC, or a topic name with --broker. A topic is read from the
    beginning to its current end.

    \b
    Prints, per campaign: caught or not, accounts named / accounts in it,
    time to detect (event time from campaign start to the first alert's
    window end) and the rules that fired; then alert precision, false alerts
    per 1,000 benign account-hours and alerts on confounders; then the goals
    missed. Goals:
      every campaign caught; hydra clusters: >= 90% of accounts named;
      median time to detect <= 2 min (low-and-slow <= 60 min);
      precision >= 0.90; <= 0.50 false alerts per 1,000 benign
      account-hours; no alert on a confounder.

    \b
    Examples:
      xwatch evaluate labels.json alerts.jsonl
      xwatch evaluate labels.json kafka://127.0.0.1:9092/abuse.alerts --fail-on-goals
      xwatch evaluate labels.json abuse.alerts --broker kafka:9092 --json
    """
    if scenario is not None:
        _evaluate_scenario(scenario, seeds, jobs, per_seed, as_json, fail_on_goals)
        return
    if labels is None or alerts is None:
        raise click.UsageError("give LABELS and ALERTS, or --scenario NAME --seeds A-B")
    try:
        scenario_labels = read_labels(labels)
    except (ValueError, msgspec.DecodeError, OSError) as exc:
        raise click.ClickException(f"cannot read labels {labels}: {exc}") from exc
    try:
        loaded = load_alerts(alerts, broker, idle_timeout_s=idle_timeout)
    except (ValueError, AlertSourceError, OSError) as exc:
        raise click.ClickException(f"cannot read alerts {alerts}: {exc}") from exc

    scorecard = evaluate(scenario_labels, loaded.alerts)
    failed = scorecard.meets_goals()
    if as_json:
        out = scorecard.to_dict()
        out["failed_goals"] = failed
        out["skipped"] = loaded.skipped
        click.echo(json.dumps(out, indent=2, allow_nan=False))
    else:
        from rich.console import Console

        render_scorecard(scorecard, Console(highlight=False), skipped=loaded.skipped)
    if fail_on_goals and failed:
        click.get_current_context().exit(1)


def _evaluate_scenario(name: str, seeds_text: str, jobs: int, per_seed: bool, as_json: bool,
                       fail_on_goals: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from streams.evaluate_seeds import evaluate_seeds, parse_seeds
    from streams.simulate import SCENARIOS

    if name not in SCENARIOS:
        raise click.BadParameter(f"unknown scenario {name!r}; choose from {', '.join(sorted(SCENARIOS))}",
                                 param_hint="--scenario")
    try:
        seeds = parse_seeds(seeds_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from exc
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"{name}: {len(seeds)} seeds", total=len(seeds))
        report = evaluate_seeds(name, seeds, jobs, lambda _s: bar.advance(task))
    failed = report.failed_goals()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        out = Console(highlight=False, width=None if Console().is_terminal else 140)
        t = Table(box=box.MINIMAL, title=f"{name}, seeds {seeds_text} ({len(seeds)})")
        for col in ("kind", "caught", "named (mean / worst)", "time to detect (median / max)", "rules"):
            t.add_column(col)
        for kind, k in report.kinds().items():
            named = f"{k['named_mean']:.0%} / {k['named_worst']:.0%}" if k["multi_account"] else "–"
            ttd = "–" if k["ttd_median_ms"] is None else (
                f"{format_ms(k['ttd_median_ms'])} / {format_ms(k['ttd_max_ms'])}")
            t.add_row(kind, f"{k['caught']}/{k['seeds']}", named, ttd, ", ".join(k["rules"]))
        t.add_section()
        for kind, c in report.confounders().items():
            t.add_row(kind, f"alerted {c['alerted']}/{c['seeds']}", f"pages {c['pages']}", "", "")
        out.print(t)
        tot = report.totals()
        median = tot["median_time_to_detect_ms"]
        out.print(f"alerts {tot['alerts']} (true {tot['true_alerts']}, false {tot['false_alerts']}); "
                  f"precision {tot['precision']:.3f}; "
                  f"{tot['false_alerts_per_1k_account_hours']:.2f} false alerts per 1,000 benign "
                  f"account-hours; confounder alerts {tot['confounder_alerts']}, pages "
                  f"{tot['confounder_pages']}; firing alerts per incident "
                  f"{tot['alerts_per_incident']:.2f}; median time to detect "
                  f"{format_ms(median) if median is not None else 'never'} (slow kinds apart)")
        if per_seed:
            for card in report.cards:
                missed = [c["kind"] for c in card["campaigns"] if not c["confounder"] and not c["caught"]]
                out.print(f"seed {card['seed']}: alerts {card['alerts']}, false {card['false_alerts']}, "
                          f"confounder pages {card['confounder_pages']}"
                          + (f", missed {', '.join(missed)}" if missed else ""))
        if failed:
            out.print(f"[red]goals missed ({len(failed)}):[/]")
            for line in failed:
                out.print(f"  [red]✗[/] {line}")
        else:
            out.print("[green]✓ all goals met[/]")
    if fail_on_goals and failed:
        click.get_current_context().exit(1)
