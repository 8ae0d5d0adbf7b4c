"""Quiet input closes windows without inventing event time (issue 14, item 5).

A preview of the open windows fires their alerts early but leaves the monitor as it was:
events that arrive after the pause are counted as they would have been without it, none is
late, and the same alerts (same ids) come out, each once.
"""

from __future__ import annotations

import msgspec
import numpy as np

from models.monitor import MonitorConfig, PartitionMonitor
from streams.columns import ColumnBuilder
from streams.simulate import build_scenario, encode_events

CFG = MonitorConfig(window_ms=60_000, allowed_lateness_ms=30_000, warmup_windows=2)


def _columns(values: list[bytes]):  # type: ignore[no-untyped-def]
    decoded = ColumnBuilder().decode(values)
    assert not decoded.rejected
    return decoded.columns


def _run(values: list[bytes], pause_at: int | None) -> tuple[list[tuple[str, str]], int, int, dict[str, int]]:
    """(alert_id, status) in the order they came, events late, events counted, and the
    batch start at which each alert first came (-1: the preview), for a monitor fed ``values`` in batches of
    500, with a preview (the engine's quiet-input step) before batch ``pause_at``."""
    mon = PartitionMonitor(CFG)
    out: list[tuple[str, str]] = []
    first_at: dict[str, int] = {}
    late = 0
    for start in range(0, len(values) + 500, 500):
        found = []
        if pause_at is not None and start == pause_at:
            found += mon.preview().findings
            for f in found:
                first_at[f.alert_id] = -1          # -1: sent by the preview
        if start < len(values):
            result = mon.step(_columns(values[start:start + 500]))
            late += len(result.late)
            found += result.findings
        else:
            found += mon.flush()
        out += [(f.alert_id, f.status) for f in found]
        for f in found:
            first_at.setdefault(f.alert_id, start)
    return out, late, mon.counters.events, first_at


def _window_ends(values: list[bytes]) -> dict[str, int]:
    mon = PartitionMonitor(CFG)
    found = mon.step(_columns(values)).findings + mon.flush()
    return {f.alert_id: f.window_end_ts for f in found if f.status == "firing"}


def test_a_pause_loses_no_event_and_changes_no_alert_id() -> None:
    s = build_scenario("demo", seed=5, duration_s=1800, accounts=40, total_rate=8.0)
    values = [v for _, _, v in encode_events(s)]
    plain, late_plain, counted_plain, first_at = _run(values, None)
    firing = [a for a, st in plain if st == "firing"]
    assert firing, "the scenario raises no alert: nothing tested"
    # pause after every event of an alert's window has arrived, before the batch that
    # closes it (the watermark must pass its end plus the lateness): it is still open
    ts = [msgspec.json.decode(v)["ts"] for v in values]
    ends = _window_ends(values)
    pause_at = alert = None
    for a in firing:
        done = [b for b in range(0, first_at[a] + 1, 500) if b and max(ts[:b]) >= ends[a] - 1]
        if done:
            pause_at, alert = done[0], a
            break
    assert pause_at is not None, "no alert whose window is complete before it closes"
    paused, late_paused, counted_paused, paused_first_at = _run(values, pause_at)
    assert paused_first_at[alert] == -1, "the preview did not send the open window's alert"
    assert late_paused == late_plain == 0
    assert counted_paused == counted_plain == len(values)
    assert set(paused) == set(plain)
    assert len(paused) == len(set(paused)), "an alert sent early was sent again"


def test_preview_leaves_the_monitor_as_it_was() -> None:
    s = build_scenario("demo", seed=3, duration_s=900, accounts=20, total_rate=6.0)
    values = [v for _, _, v in encode_events(s)]
    mon = PartitionMonitor(CFG)
    mon.step(_columns(values))
    before = mon.to_dict()
    mon.preview()
    after = mon.to_dict()
    after.pop("previewed"), before.pop("previewed")
    assert after == before


def test_an_event_newer_than_all_seen_is_never_late_after_a_quiet_spell() -> None:
    ev = b'{"event_id":"%d","ts":%d,"account_id":"a","api_key_id":"k","model":"m",' \
         b'"endpoint":"/x","status":200,"prompt_tokens":1,"completion_tokens":2}'
    mon = PartitionMonitor(CFG)
    t0 = 1_767_225_600_000
    mon.step(_columns([ev % (i, t0 + 1000 * i) for i in range(30)]))
    mon.preview()                                  # the input went quiet for a while
    r = mon.step(_columns([ev % (100 + i, t0 + 31_000 + 1000 * i) for i in range(60)]))
    assert r.late.tolist() == [] and r.counted == 60
    assert mon.watermark == t0 + 31_000 + 59_000


def test_partial_preview_up_to_another_partitions_watermark() -> None:
    s = build_scenario("demo", seed=9, duration_s=1800, accounts=30, total_rate=6.0)
    values = [v for _, _, v in encode_events(s)]
    mon = PartitionMonitor(CFG)
    mon.step(_columns(values[: len(values) // 2]))
    open_before = mon.open_windows
    p = mon.preview(until_ts=mon.watermark + 10 * 60_000)
    assert mon.open_windows == open_before and isinstance(p.findings, list)
    # ids already previewed are not previewed again
    again = mon.preview()
    assert not {f.alert_id for f in p.findings} & {f.alert_id for f in again.findings}
    assert np.all([f.status == "firing" for f in p.findings + again.findings])
