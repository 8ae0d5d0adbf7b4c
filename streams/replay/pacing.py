"""Pacing: release events at a speed factor of their recorded pace, against a monotonic clock.

An event recorded ``d`` ms after the first one is sent ``d / speed`` ms (wall) after the
first one was. The replay loop never asks the clock per event: the pacer hands back
``due_ms``, the latest event time that may go out now (``tick_s`` of scaled time ahead),
and the loop calls :meth:`Pacer.wait` only for an event past it. Waiting is done in
slices of at most ``max_sleep_s`` so progress and Ctrl-C stay responsive; the sleeper is
injected (the replay loop passes one that serves producer callbacks while it waits).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["FAR_FUTURE_MS", "Pacer"]

FAR_FUTURE_MS = 1 << 62


class Pacer:
    """Maps event time to wall time; ``speed=None`` means no pacing at all.

    ``due_ms`` starts in the far past, so the first event always calls :meth:`wait`; with
    ``speed=None`` that returns the far future and nothing is ever waited for.

    >>> now = [0.0]
    >>> def sleep(s): now[0] += s
    >>> p = Pacer(60.0, clock=lambda: now[0], sleep=sleep)
    >>> p.wait(1_000_000)            # first event: anchors, no wait
    1001200
    >>> p.wait(1_000_000 + 60_000)   # one minute of recording later: one second at 60x
    1061200
    >>> round(now[0], 3), p.slept_s == now[0]
    (1.0, True)
    """

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep, tick_s: float = 0.02,
                 max_sleep_s: float = 0.25) -> None:
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")
        if tick_s < 0 or max_sleep_s <= 0:
            raise ValueError("tick_s must be >= 0 and max_sleep_s > 0")
        self.speed = speed
        self.tick_s = tick_s
        self.max_sleep_s = max_sleep_s
        self._clock = clock
        self._sleep = sleep
        self._reset()

    def _reset(self) -> None:
        self._origin_ts: int | None = None
        self._origin_wall = 0.0
        self.due_ms = -FAR_FUTURE_MS   # the first event always calls wait()
        self.slept_s = 0.0      # total time spent waiting
        self.sleeps = 0         # number of sleeper calls
        self.behind_s = 0.0     # how late the last checked event was (producer too slow)

    def scheduled_at(self, ts_ms: int) -> float:
        """Clock reading at which the event at ``ts_ms`` is due (after the first event)."""
        if self._origin_ts is None or self.speed is None:
            raise RuntimeError("no event has been paced yet")
        return self._origin_wall + (ts_ms - self._origin_ts) / (self.speed * 1000.0)

    def wait(self, ts_ms: int) -> int:
        """Block until the event at ``ts_ms`` is due; return the new ``due_ms``."""
        if self.speed is None:
            return FAR_FUTURE_MS
        now = self._clock()
        if self._origin_ts is None:
            self._origin_ts, self._origin_wall = ts_ms, now
        target = self.scheduled_at(ts_ms)
        remaining = target - now
        self.behind_s = max(0.0, -remaining)
        while remaining > 0.0005:
            chunk = min(remaining, self.max_sleep_s)
            self._sleep(chunk)
            self.sleeps += 1
            after = self._clock()
            self.slept_s += after - now
            now = after
            remaining = target - now
        ahead_ms = (now - self._origin_wall + self.tick_s) * self.speed * 1000.0
        self.due_ms = self._origin_ts + int(ahead_ms)
        return self.due_ms
