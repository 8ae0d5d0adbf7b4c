"""Backtest completion logic: committed offsets against true ends, then a quiet period."""

from __future__ import annotations

import pytest

from streams.replay.backtest import BacktestTimeout, lagging_partitions, wait_until_caught_up


class Worker:
    """A fake worker that commits ``step`` events per poll and emits alerts on some polls."""

    def __init__(self, ends: dict[int, int], step: int, alerts_at: set[int]) -> None:
        self.ends = ends
        self.committed = {p: -1 for p in ends}
        self.step = step
        self.alerts_at = alerts_at
        self.now = 0.0
        self.polls = 0

    def fetch(self) -> dict[int, int]:
        return dict(self.committed)

    def poll(self, timeout_s: float) -> int:
        self.now += timeout_s
        self.polls += 1
        for p, end in self.ends.items():
            self.committed[p] = min(end, max(0, self.committed[p]) + self.step)
        return 1 if self.polls in self.alerts_at else 0


def test_lagging_partitions_uses_the_tolerance_and_treats_no_commit_as_zero() -> None:
    assert lagging_partitions({0: 10, 1: 10}, {0: -1001, 1: 8}, tolerance=2) == {0: 10}
    assert lagging_partitions({0: 10}, {}, tolerance=0) == {0: 10}


def test_waits_for_commits_then_for_quiet() -> None:
    w = Worker({0: 100, 1: 50}, step=10, alerts_at={3, 12})
    waited = wait_until_caught_up(w.fetch, w.ends, w.poll, quiet_s=3.0, timeout_s=100,
                                  check_every_s=1.0, clock=lambda: w.now)
    assert w.committed == {0: 100, 1: 50}
    # caught up after 10 polls of 1 s; the alert at poll 12 restarts the 3 s quiet period
    assert waited == pytest.approx(15.0)


def test_times_out_with_the_lag_in_the_message() -> None:
    w = Worker({0: 100, 3: 7}, step=0, alerts_at=set())
    with pytest.raises(BacktestTimeout, match=r"partition 0: 100 behind, partition 3: 7 behind"):
        wait_until_caught_up(w.fetch, w.ends, w.poll, quiet_s=1.0, timeout_s=5,
                             clock=lambda: w.now)
