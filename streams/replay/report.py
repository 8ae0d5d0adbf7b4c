"""What a person sees: a rich progress bar while replaying, a summary at the end.

The bar shows the source position (bytes, rows or records), events per second, the
event-time position in the recording and an ETA. Invalid input is printed as it is met
(the first ``show_invalid`` of it) and always counted in the summary.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from streams.replay.runner import InvalidInput, ReplayStats
from streams.replay.times import format_ms

__all__ = ["ReplayProgress", "print_summary"]


class ReplayProgress:
    """Context manager around a rich progress bar fed with :class:`ReplayStats`."""

    def __init__(self, console: Console, description: str, *, refresh_s: float = 0.1,
                 enabled: bool = True) -> None:
        self.console = console
        self.description = description
        self.refresh_s = refresh_s
        self._last = 0.0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[events]:>11,} events"),
            TextColumn("{task.fields[rate]:>9,.0f}/s"),
            TextColumn("at [cyan]{task.fields[event_time]}[/]"),
            TextColumn("{task.fields[note]}"),
            TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ReplayProgress:
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=None, events=0, rate=0.0,
                                             event_time="-", note="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, stats: ReplayStats) -> None:
        now = time.monotonic()
        if now - self._last < self.refresh_s and stats.finished is None:
            return
        self._last = now
        if self._task is None:
            return
        notes = []
        if stats.invalid:
            notes.append(f"[yellow]{stats.invalid:,} invalid[/]")
        if stats.behind_s > 1.0:
            notes.append(f"[red]{stats.behind_s:.1f}s behind[/]")
        self._progress.update(
            self._task, completed=stats.progress, total=stats.total, events=stats.produced,
            rate=stats.rate(now if stats.finished is None else None),
            event_time=format_ms(stats.last_ts), note=" ".join(notes))

    def invalid(self, item: InvalidInput) -> None:
        self.console.print(f"[yellow]invalid[/] {escape(item.where)}: {escape(item.reason)}",
                           highlight=False, soft_wrap=True)


def print_summary(console: Console, stats: ReplayStats, *, target: str, dry_run: bool,
                  show_invalid: int) -> None:
    """The closing lines: counts, event-time span, rate, what was skipped and why."""
    verb = "validated" if dry_run else "replayed"
    where = "(dry run: nothing produced)" if dry_run else f"into [bold]{escape(target)}[/]"
    console.print(f"{verb} [bold]{stats.produced:,}[/] events {where} in "
                  f"{stats.elapsed_s():.1f} s ({stats.rate():,.0f} events/s)", highlight=False)
    if stats.first_ts is not None:
        span = f"event time {format_ms(stats.first_ts)} -> {format_ms(stats.last_ts)}"
        if stats.shift_ms:
            span += f", shifted by {stats.shift_ms / 3_600_000:+,.2f} h (--rewrite-time)"
        console.print(span, highlight=False)
    reasons = ", ".join(f"{code} {n:,}" for code, n in stats.invalid_reasons.most_common())
    line = f"invalid input skipped: {stats.invalid:,}" + (f" ({reasons})" if reasons else "")
    if stats.invalid > show_invalid:
        line += f"; the first {show_invalid} are listed above"
    console.print(("[yellow]" if stats.invalid else "") + escape(line), highlight=False)
    if stats.outside_window:
        console.print(f"outside --start/--end: {stats.outside_window:,}", highlight=False)
    if stats.failed or stats.undelivered:
        console.print(f"[red]not delivered: {stats.failed + stats.undelivered:,}[/]", highlight=False)
