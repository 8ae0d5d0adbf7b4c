"""``xwatch replay``: play recorded traffic into a topic at a speed factor (or score it with
``--backtest``). Registered on the ``xwatch`` group by one line at the end of
``streams/cli.py``; everything heavy is imported when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streams.kafka_options import kafka_options

if TYPE_CHECKING:
    from rich.console import Console

    from streams.connection import KafkaConnection

__all__ = ["replay_command"]

_EPILOG = """\b
Examples:
  xwatch replay day.jsonl.gz --speed 60            an hour of traffic a minute
  xwatch replay day.jsonl --speed max              as fast as the broker takes it
  xwatch replay day.jsonl --dry-run                validate and count, produce nothing
  xwatch replay logs.csv --csv-map ts=time,account_id=acct,event_id=id
  xwatch replay day.jsonl --start 2024-05-01T09:00:00Z --end 2024-05-01T10:00:00Z \\
                          --rewrite-time now --speed 1
  xwatch replay --from-topic api.requests.archive --start 1714554000000 --end 1714557600000
  xwatch replay scenario.jsonl --backtest scenario.labels.json   (with 'xwatch worker' running)

\b
Input formats, by file name (or --format): .jsonl/.ndjson/.json (one event per line),
.csv (header row; --csv-map), .parquet (needs: pip install 'extraction-watch[parquet]');
.gz compression is detected from the content. Invalid lines are skipped, listed with their
line numbers (the first --show-invalid) and counted in the summary.
"""

_FORMATS = ("auto", "jsonl", "csv", "parquet")


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv") or name.endswith(".tsv"):
        return "csv"
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    return "jsonl"


@click.command("replay", epilog=_EPILOG,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@kafka_options("Kafka bootstrap servers to write to (and read --from-topic from): "
               "host:port[,host:port...] or kafka://host:port.", default_broker="127.0.0.1:9092")
@click.option("--topic", metavar="TOPIC", help="Topic to write events to; created with "
              "XWATCH_PARTITIONS partitions if missing. Key = account_id, message timestamp = "
              "the event's ts.  [default: api.requests, or XWATCH_TOPIC_REQUESTS]")
@click.option("--speed", default="max", show_default=True, metavar="N|max",
              help="Speed factor: 1 = real time, 60 = an hour of recording a minute, 0.5 = half "
              "speed; 'max' = as fast as the broker takes it. Gaps between events are kept in "
              "scaled time.")
@click.option("--start", metavar="TIME", help="Replay only events with ts >= TIME (RFC 3339 "
              "such as 2024-05-01T09:00:00Z, or epoch ms). With --from-topic: where reading begins.")
@click.option("--end", metavar="TIME", help="Replay only events with ts < TIME (RFC 3339 or "
              "epoch ms). With --from-topic: where reading stops.")
@click.option("--rewrite-time", "rewrite_time", metavar="now|TIME",
              help="Shift every event time so the first replayed event is at TIME ('now': the "
              "moment it is sent). Rewrites ts in the produced JSON and the message timestamp.")
@click.option("--dry-run", is_flag=True, help="Read, validate, apply --start/--end and count; "
              "produce nothing (ignores --speed).")
@click.option("--backtest", "labels", metavar="LABELS",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels file from 'xwatch simulate'. After replaying, wait until the worker "
              "(group <app-id>-detector) has caught up and alerts went quiet, then score the "
              "alerts against the labels and print the evaluation table.")
@click.option("--app-id", envvar="XWATCH_APP_ID", show_envvar=True, metavar="ID",
              help="The worker's app id, for --backtest: its consumer group is <ID>-detector. "
              "[default: xwatch]")
@click.option("--csv-map", metavar="FIELD=COL,...", help="Which CSV/Parquet column holds which "
              "event field, e.g. ts=time,account_id=acct. Columns named like a field need no "
              "mapping. Numbers, booleans and flags (a;b or a JSON list) are converted.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="auto", show_default=True,
              help="Input format; 'auto' goes by the file name.")
@click.option("--from-topic", metavar="TOPIC", help="Replay records of this topic (same broker) "
              "between --start and --end instead of files, merged across partitions in time order.")
@click.option("--offset-lookup", type=click.Choice(["auto", "broker", "scan"]), default="auto",
              show_default=True, help="How --from-topic finds the offsets for --start/--end: "
              "'broker' = offsets_for_times (Apache Kafka); 'scan' = binary search on record "
              "timestamps (works on the embedded broker, which answers offsets_for_times wrongly); "
              "'auto' = ask the broker, check the answer, fall back to the search.")
@click.option("--show-invalid", type=click.IntRange(min=0), default=20, show_default=True,
              metavar="N", help="List the first N invalid lines; all are counted.")
@click.option("--backtest-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              metavar="SECONDS", help="How long --backtest waits for the worker to catch up.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway when "
              "output is not a terminal).")
def replay_command(files: tuple[Path, ...], broker: KafkaConnection | None, topic: str | None, speed: str,
                   start: str | None, end: str | None, rewrite_time: str | None, dry_run: bool,
                   labels: Path | None, app_id: str | None, csv_map: str | None, fmt: str,
                   from_topic: str | None, offset_lookup: str, show_invalid: int,
                   backtest_timeout: float, no_progress: bool) -> None:
    """Play recorded request events into a topic at a speed factor.

    FILES are JSON Lines, CSV or Parquet recordings, replayed one after another; or use
    --from-topic to replay a time range of a topic. Each event is validated like the
    worker validates it; invalid ones are reported with their line numbers and skipped.
    """
    from rich.console import Console

    from streams.replay.errors import ReplayError

    console = Console(highlight=False, soft_wrap=True)
    try:
        code = _run(console, files, broker, topic, speed, start, end, rewrite_time, dry_run, labels,
                    app_id, csv_map, fmt, from_topic, offset_lookup, show_invalid,
                    backtest_timeout, no_progress)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    if code:
        sys.exit(code)


def _run(console: Console, files: tuple[Path, ...], broker: KafkaConnection | None, topic: str | None,
         speed_text: str, start: str | None, end: str | None, rewrite_time: str | None,
         dry_run: bool, labels: Path | None, app_id: str | None, csv_map: str | None, fmt: str,
         from_topic: str | None, offset_lookup: str, show_invalid: int, backtest_timeout: float,
         no_progress: bool) -> int:
    from streams.replay.batch import Source
    from streams.replay.errors import ReplayError
    from streams.replay.jsonl import JsonLinesSource
    from streams.replay.report import ReplayProgress, print_summary
    from streams.replay.runner import ReplayOptions, ReplayStats, replay
    from streams.replay.sink import TopicSink, check_broker
    from streams.replay.tabular import CsvSource, ParquetSource, parse_column_map
    from streams.replay.times import parse_speed, parse_time
    from streams.replay.topic import TopicSource
    from streams.settings import Settings

    try:
        speed = parse_speed(speed_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--speed") from None
    times: dict[str, int | None] = {}
    for flag, text in (("--start", start), ("--end", end)):
        try:
            times[flag] = None if text is None else parse_time(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=flag) from None
    rewrite: str | int | None = None
    if rewrite_time is not None:
        try:
            rewrite = "now" if rewrite_time.strip().lower() == "now" else parse_time(rewrite_time)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rewrite-time") from None
    if bool(files) == bool(from_topic):
        raise click.UsageError("give recording FILES or --from-topic TOPIC (one of the two)")
    if labels is not None and dry_run:
        raise click.UsageError("--backtest needs the events produced: drop --dry-run")
    if offset_lookup != "auto" and not from_topic:
        raise click.UsageError("--offset-lookup applies to --from-topic only")
    try:
        settings = Settings.from_env(kafka=broker, app_id=app_id)
        options = ReplayOptions(speed=speed, start_ms=times["--start"], end_ms=times["--end"],
                                rewrite_to=rewrite, show_invalid=show_invalid,  # type: ignore[arg-type]
                                dry_run=dry_run)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    target = topic or settings.topics.requests
    mapping = parse_column_map(csv_map)

    sources: list[Source] = []
    if from_topic:
        if from_topic == target and not dry_run:
            raise click.UsageError(f"--from-topic {from_topic} is also the target topic: "
                                   "pick another --topic")
        if csv_map:
            raise click.UsageError("--csv-map applies to CSV and Parquet files only")
        check_broker(settings.connection)
        sources.append(TopicSource(settings.connection, from_topic, start_ms=options.start_ms,
                                   end_ms=options.end_ms, lookup=offset_lookup))
    else:
        kinds = [_format_of(f, fmt) for f in files]
        if csv_map and all(k == "jsonl" for k in kinds):
            raise click.UsageError("--csv-map applies to CSV and Parquet files only")
        for path, kind in zip(files, kinds, strict=True):
            if kind == "csv":
                sources.append(CsvSource(path, mapping))
            elif kind == "parquet":
                sources.append(ParquetSource(path, mapping))
            else:
                sources.append(JsonLinesSource(path))

    progress = not no_progress and console.is_terminal
    if labels is not None:
        from streams.replay.backtest import run_backtest

        try:
            result = run_backtest(settings, sources, labels, options=options, console=console,
                                  topic=target, timeout_s=backtest_timeout,
                                  show_progress=progress)
        except ImportError as exc:
            raise ReplayError(f"--backtest needs the evaluator (streams.evaluate): {exc}") from None
        return 1 if result.stats.failed or result.stats.undelivered else 0

    sink = None
    if not dry_run:
        sink = TopicSink(settings.connection, target, partitions=settings.partitions)
        sink.check()
        if sink.created:
            console.print(f"created topic [bold]{target}[/] with {settings.partitions} partitions")
    label = "dry run" if dry_run else "replay"
    last: list[ReplayStats] = []

    def on_progress(stats: ReplayStats) -> None:
        if not last:
            last.append(stats)
        view.update(stats)

    interrupted = False
    with ReplayProgress(console, label, enabled=progress) as view:
        try:
            replay(sources, sink, options, on_progress=on_progress, on_invalid=view.invalid)
        except KeyboardInterrupt:
            interrupted = True
    if not last:
        return 130 if interrupted else 0
    stats = last[0]
    for src in sources:
        if isinstance(src, TopicSource):
            paths = sorted(set(src.lookup_paths.values()))
            if paths:
                console.print(f"offset lookup for {src.topic}: {', '.join(paths)}")
    print_summary(console, stats, target=target, dry_run=dry_run, show_invalid=show_invalid)
    if interrupted:
        console.print("[yellow]interrupted[/]: the counts above are up to the interruption")
        return 130
    if stats.failed or stats.undelivered:
        error = sink.first_error if sink is not None else None
        raise ReplayError(f"{stats.failed + stats.undelivered:,} events were not delivered to "
                          f"{target}" + (f": {error}" if error else ""))
    return 0
