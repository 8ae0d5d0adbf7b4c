"""``xwatch detect EVENTS``: the worker's detection over a file of request events, no broker.

Runs :func:`~streams.offline.detect_offline` (the worker's own per-partition fold and
population view) over a JSON Lines file of request events (plain or gzip, told by content) and writes the alerts as JSON Lines, exactly as the worker would put them
on the alert topic for the same events (same ``alert_id`` values). Values the worker would
dead-letter are skipped the same way and counted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
import msgspec

from streams.alerts import encode_alert
from streams.records import AccountRecord
from streams.replay.errors import ReplayError
from streams.replay.jsonl import JsonLinesSource

__all__ = ["detect_command"]


def _values(path: str | Path) -> Iterator[bytes]:
    """The lines of a JSON Lines file, plain or gzip (by content), blank lines skipped."""
    for batch in JsonLinesSource(path).batches():
        yield from batch.values


def _accounts(path: Path | None) -> list[AccountRecord]:
    if path is None:
        return []
    decode = msgspec.json.Decoder(AccountRecord).decode
    out = []
    for i, line in enumerate(_values(path), 1):
        try:
            out.append(decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise click.ClickException(f"{path}:{i}: not an account record ({exc})") from exc
    return out


@click.command("detect", context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.argument("events")
@click.option("--accounts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Account records (JSON Lines, the api.accounts stream), e.g. the "
                   "*.accounts.jsonl that `xwatch simulate` writes.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the alerts here (JSON Lines); default: standard output.")
@click.option("--partitions", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Split the events like an input topic with this many partitions, keyed by "
                   "account_id (use the topic's partition count to match a worker).")
def detect_command(events: str, accounts: Path | None, out: Path | None, partitions: int) -> None:
    """Run detection over EVENTS (a JSON Lines file of request events, plain or gzip) offline.

    \\b
    Examples:
      xwatch simulate --scenario wild --seed 3 --out day.jsonl.gz
      xwatch detect day.jsonl.gz --accounts day.accounts.jsonl --out alerts.jsonl
      xwatch evaluate day.labels.json alerts.jsonl
    """
    from streams.offline import detect_offline

    try:
        records = _accounts(accounts)
        alerts = detect_offline(_values(events), partitions=partitions, accounts=records)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    sink = out.open("wb") if out is not None else sys.stdout.buffer
    try:
        for a in alerts:
            sink.write(encode_alert(a) + b"\n")
    finally:
        if out is not None:
            sink.close()
    firing = sum(1 for a in alerts if a.status == "firing")
    click.echo(f"{len(alerts)} alert records ({firing} firing)"
               + (f" written to {out}" if out else ""), err=True)
