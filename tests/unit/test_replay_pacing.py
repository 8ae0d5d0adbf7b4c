"""Pacing math with an injected clock and sleeper: no real sleeping."""

from __future__ import annotations

import pytest

from streams.replay.pacing import FAR_FUTURE_MS, Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def pacer(self, speed: float | None, **kw: float) -> Pacer:
        return Pacer(speed, clock=self.clock, sleep=self.sleep, **kw)


def drive(pacer: Pacer, stamps: list[int], t: FakeTime, work_s: float = 0.0) -> list[float]:
    """Run stamps through the pacer like the replay loop does; return send times (wall)."""
    sent = []
    due = pacer.due_ms
    for ts in stamps:
        if ts > due:
            due = pacer.wait(ts)
        sent.append(t.now)
        t.now += work_s
    return sent


@pytest.mark.parametrize("speed", [1.0, 60.0, 0.5, 3600.0])
def test_gaps_are_kept_in_scaled_time(speed: float) -> None:
    t = FakeTime()
    stamps = [0, 5_000, 5_000, 65_000, 3_665_000]          # ms of recording
    sent = drive(t.pacer(speed, tick_s=0.0), stamps, t)
    offsets = [s - sent[0] for s in sent]
    assert offsets == pytest.approx([ts / 1000 / speed for ts in stamps], abs=1e-3)


def test_wait_is_sliced_so_progress_and_ctrl_c_stay_responsive() -> None:
    t = FakeTime()
    drive(t.pacer(1.0, max_sleep_s=0.25), [0, 10_000], t)
    assert len(t.sleeps) == 40 and max(t.sleeps) <= 0.25
    assert sum(t.sleeps) == pytest.approx(10.0, abs=1e-6)


def test_tiny_gaps_do_not_cost_a_sleep_each() -> None:
    t = FakeTime()
    stamps = list(range(0, 10_000))            # one event per ms for 10 s at real time
    pacer = t.pacer(1.0, tick_s=0.02)
    sent = drive(pacer, stamps, t)
    assert sum(t.sleeps) == pytest.approx(10.0, abs=0.03)
    assert len(t.sleeps) <= 10.0 / 0.02 + 1          # about one sleep per 20 ms tick, not 10,000
    lateness = [s - (100.0 + ts / 1000) for s, ts in zip(sent, stamps, strict=True)]
    assert max(lateness) <= 1e-6                          # never late on an idle producer
    assert min(lateness) >= -0.02 - 1e-6                  # at most one tick early


def test_max_speed_never_sleeps_or_reads_the_clock_per_event() -> None:
    t = FakeTime()
    calls = []
    pacer = Pacer(None, clock=lambda: calls.append(1) or t.now, sleep=t.sleep)
    assert pacer.wait(0) == FAR_FUTURE_MS
    drive(pacer, [0, 10**9, 2 * 10**9], t)
    assert t.sleeps == [] and calls == []


def test_out_of_order_and_slow_producer_never_wait() -> None:
    t = FakeTime()
    pacer = t.pacer(1.0, tick_s=0.0)
    drive(pacer, [10_000, 11_000], t)             # anchor at 10 s, then wait 1 s
    assert sum(t.sleeps) == pytest.approx(1.0)
    t.sleeps.clear()
    pacer.wait(10_500)                              # earlier than the last: due already
    assert t.sleeps == []
    t.now += 5.0                                    # the producer fell 5 s behind
    pacer.wait(12_000)
    assert t.sleeps == [] and pacer.behind_s == pytest.approx(4.0)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Pacer(0)
    with pytest.raises(ValueError):
        Pacer(1.0, max_sleep_s=0)
