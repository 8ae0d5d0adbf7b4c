"""The crash-loop guard (streams.crash_journal), run against simulated worker lives.

Each simulated life resumes from the last snapshot, asks the guard how to proceed, writes the
journal as the engine does (before each careful chunk), and dies whenever the chunk in
flight holds the message that kills the process. The journal entry left behind is all the
next life knows.
"""

from __future__ import annotations

import random

import pytest

from streams.crash_journal import JournalEntry, PartitionGuard


def _lives(n_messages: int, batch: int, kills: set[int], snapshot_every: int,
           max_crashes: int = 3, max_lives: int = 50,
           crash_at: list[int] | None = None) -> tuple[int, list[int], int]:
    """Run lives until the input is done: (lives, dead-lettered offsets, crashes)."""
    journal: JournalEntry | None = None
    snapshot = 0          # next offset the last snapshot covers
    dead: list[int] = []
    crashes = 0
    for life in range(1, max_lives + 1):
        guard = PartitionGuard.resume(journal, max_crashes)
        journal = guard.entry(None)
        pos, since_snapshot = snapshot, 0
        random_crash = crash_at[life - 1] if crash_at and life - 1 < len(crash_at) else None
        died = False
        while pos < n_messages and not died:
            offsets = list(range(pos, min(pos + batch, n_messages)))
            if guard.careful and guard.poison in offsets:
                dead.append(guard.poison)           # type: ignore[arg-type]
                offsets.remove(guard.poison)        # type: ignore[arg-type]
                guard.dead_lettered()
            for chunk in (guard.chunks(offsets) if guard.careful else [offsets]):
                if guard.careful:
                    journal = guard.entry((chunk[0], chunk[-1]))
                if kills & set(chunk) or (random_crash is not None and random_crash in chunk):
                    died = True
                    break
            if died:
                break
            pos = min(pos + batch, n_messages)
            since_snapshot += batch
            if since_snapshot >= snapshot_every or pos >= n_messages:
                snapshot, since_snapshot = pos, 0
                if guard.passed(snapshot):
                    journal = guard.entry(None)
        if died:
            crashes += 1
            continue
        journal = JournalEntry(clean=True)
        return life, dead, crashes
    raise AssertionError(f"no end after {max_lives} lives; dead-lettered {dead}")


@pytest.mark.parametrize("batch", [1, 7, 100, 10_000])
@pytest.mark.parametrize("max_crashes", [1, 3])
def test_a_message_that_kills_the_worker_is_dead_lettered_within_a_few_crashes(
        batch: int, max_crashes: int) -> None:
    killer = 23_456 % (batch * 3 + 5) + 10
    lives, dead, crashes = _lives(40_000, batch, {killer}, snapshot_every=5 * batch,
                                  max_crashes=max_crashes)
    assert dead == [killer]
    # one unattributed crash, one per 32-fold narrowing, then max_crashes with it alone
    assert crashes <= 1 + 4 + max_crashes


def test_two_killers_are_both_found() -> None:
    lives, dead, crashes = _lives(5_000, 500, {1_234, 3_999}, snapshot_every=1_000)
    assert dead == [1_234, 3_999]


def test_crashes_at_random_places_convict_no_one() -> None:
    """Kills that have nothing to do with a message (rollouts, OOM under load) land at a
    different place each time: nothing may be dead-lettered for them."""
    rng = random.Random(7)
    for _ in range(50):
        crash_at = [rng.randrange(0, 20_000) for _ in range(8)]
        lives, dead, crashes = _lives(20_000, 1_000, set(), snapshot_every=2_000,
                                      crash_at=crash_at)
        assert dead == []


def test_a_clean_stop_forgets_everything() -> None:
    g = PartitionGuard.resume(JournalEntry(inflight=(5, 5), suspect=(5, 5), crashes=9))
    assert g.careful and g.poison == 5
    g = PartitionGuard.resume(JournalEntry(clean=True, suspect=(5, 5), crashes=9))
    assert not g.careful and g.poison is None


def test_careful_mode_ends_only_past_the_suspects() -> None:
    g = PartitionGuard.resume(JournalEntry(inflight=(100, 199)))
    assert g.careful and not g.passed(150)
    assert g.passed(200) and not g.careful and g.suspect is None
