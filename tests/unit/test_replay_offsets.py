"""Finding offsets by time without the broker's help: the binary search and the check of the
broker's answer, against in-memory partitions (the broker-backed paths are in
tests/integration/test_replay_topic.py)."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from streams.replay.offsets import broker_answer_holds, first_offset_at_or_after


class Partition:
    """Records at increasing offsets (with gaps), non-decreasing timestamps; counts probes."""

    def __init__(self, records: list[tuple[int, int]]) -> None:
        self.records = records
        self.offsets = [o for o, _ in records]
        self.probes = 0

    def probe(self, offset: int) -> tuple[int, int] | None:
        self.probes += 1
        i = bisect.bisect_left(self.offsets, offset)
        return self.records[i] if i < len(self.records) else None

    def truth(self, ts: int, end: int) -> int:
        return next((o for o, t in self.records if t >= ts), end)


@st.composite
def partitions(draw: st.DrawFn) -> tuple[Partition, int, int]:
    gaps = draw(st.lists(st.integers(1, 3), max_size=60))
    steps = draw(st.lists(st.integers(0, 5), min_size=len(gaps), max_size=len(gaps)))
    low = draw(st.integers(0, 10))
    offsets, stamps, o, t = [], [], low, 1000
    for gap, step in zip(gaps, steps, strict=True):
        offsets.append(o)
        stamps.append(t)
        o += gap
        t += step
    end = o
    return Partition(list(zip(offsets, stamps, strict=True))), low, end


@given(partitions(), st.integers(990, 1400))
def test_binary_search_finds_the_first_record_at_or_after(part: tuple[Partition, int, int], ts: int) -> None:
    p, low, end = part
    found, truth = first_offset_at_or_after(p.probe, low, end, ts), p.truth(ts, end)
    # the same place to start reading: at the truth, or before it with nothing stored between
    assert found <= truth and not any(found <= o < truth for o in p.offsets)


def test_binary_search_needs_log_n_probes() -> None:
    p = Partition([(i, 1000 + i // 3) for i in range(100_000)])
    assert first_offset_at_or_after(p.probe, 0, 100_000, 20_000) == 57_000
    assert p.probes <= 18


@given(partitions(), st.integers(990, 1400), st.integers(-2, 80))
def test_a_broker_answer_is_kept_only_when_it_is_right(part: tuple[Partition, int, int], ts: int,
                                                       answer: int) -> None:
    p, low, end = part
    truth = p.truth(ts, end)
    holds = broker_answer_holds(p.probe, low, end, ts, answer)
    if answer == truth and (answer == low or answer - 1 in p.offsets):
        assert holds     # right, and checkable with one read of the record before it
    if holds:
        # never wrong: at most a different offset with nothing stored between it and the truth
        lo, hi = sorted((answer, truth))
        assert not any(lo <= o < hi for o in p.offsets)


def test_the_embedded_brokers_wrong_answer_is_caught() -> None:
    """Tansu answers offset 0 for any time: right for a time before the data, wrong after."""
    p = Partition([(i, 1000 + 10 * i) for i in range(100)])
    assert broker_answer_holds(p.probe, 0, 100, 500, 0)          # before the data: 0 is right
    assert not broker_answer_holds(p.probe, 0, 100, 1500, 0)     # the truth is 50
    assert not broker_answer_holds(p.probe, 0, 100, 5000, 0)     # the truth is "none" (100)
    assert broker_answer_holds(p.probe, 0, 100, 5000, 100)
