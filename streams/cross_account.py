"""The cross-account view's state, kept across restarts and rebalances.

The coordination agent (see :mod:`streams.app`) reads the summaries topic (one partition).
The worker holding that partition keeps a :class:`~models.coordination.CoordinationDetector`
with the open windows and the known clusters. After each batch of summaries, that state is
saved as plain data on the state topic, under the summaries topic's key, through the same
:class:`~streams.state_store.SnapshotStore` the partition monitors use. It is saved before
the agent takes the next batch, so before Faust commits the batch's offsets. When the
partition is assigned, the state is loaded back. A worker that restarts or takes the
partition over then still has the summaries of windows that were open, and a cluster
seen half before and half after a restart is named whole.

Summaries read twice (a crash after the save, before the commit) are harmless: within a
window, a summary replaces the account's earlier one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from models.coordination import AccountSummary, CoordinationDetector, SummaryBatch
from models.incidents import Finding
from streams.settings import Settings
from streams.state_store import NotAcknowledged, SnapshotStore

__all__ = ["STATE_VERSION", "CrossAccountView"]

log = logging.getLogger(__name__)
STATE_VERSION = 1
_PARTITION = 0   # the summaries topic has a single partition


class CrossAccountView:
    """Owns the coordination detector while this worker holds the summaries partition."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.detector = self._new_detector()
        self.owned = False          # this worker holds the summaries partition
        self.restored = False       # the saved state has been loaded since assignment
        self.dirty = False
        self.postponed = 0             # snapshots not acknowledged in a row (Kafka away)
        self.internal_errors = 0    # bugs met and skipped (metric xwatch_internal_errors_total)
        self._store: SnapshotStore | None = None

    def _new_detector(self) -> CoordinationDetector:
        s = self.settings
        return CoordinationDetector(s.window_s * 1000, cooldown_windows=s.cooldown_windows)

    @property
    def store(self) -> SnapshotStore:
        if self._store is None:
            s = self.settings
            self._store = SnapshotStore(s.connection, s.state_topic, s.coordination_topic)
        return self._store

    # -- ownership (blocking: run these in an executor) --------------------------------
    def assign(self) -> None:
        """Load the saved state: this worker now holds the summaries partition."""
        snap = self.store.load([_PARTITION]).get(_PARTITION)
        self.detector = self._new_detector()
        if snap is not None:
            state: dict[str, Any] = snap.state
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"unsupported cross-account state version {state.get('v')!r}")
            self.detector.load_dict(state["detector"])
            log.info("cross-account view restored (snapshot %d)", snap.seq)
        self.owned = self.restored = True
        self.dirty = False

    def revoke(self) -> None:
        """Another worker takes the partition over: save, then forget."""
        if self.owned:
            self.save()
        self.owned = self.restored = False
        self.detector = self._new_detector()

    def save(self) -> bool:
        """Snapshot the view if it changed. Kafka slow or away: keep it dirty, say so once,
        and try again at the next call (never crash the worker over it)."""
        if not self.dirty:
            return True
        try:
            self.store.save(_PARTITION, 0, {"v": STATE_VERSION, "detector": self.detector.to_dict()})
        except NotAcknowledged as exc:
            if not self.postponed:
                log.warning("cross-account view: snapshot postponed (%s)", exc)
            self.postponed += 1
            return False
        if self.postponed:
            log.warning("cross-account view: snapshots written again (%d postponed)", self.postponed)
            self.postponed = 0
        self.dirty = False
        return True

    # -- the agent's work (no I/O) ------------------------------------------------------
    def add(self, raw_summaries: list[bytes]) -> list[Finding]:
        """Fold in a batch of encoded summaries; the account findings they carried that pass
        on, and the findings of the windows they let close.

        No summary can stop the view: one that cannot be read is skipped with a warning, and
        a bug met on one (or on closing windows) is logged loudly, counted in
        ``internal_errors`` and skipped, and the view carries on with the rest."""
        passed: list[Finding] = []
        for raw in raw_summaries:
            try:
                d = msgspec.msgpack.decode(raw)
                # a batch of one window (this version) or one summary (earlier workers)
                batch = (SummaryBatch.from_dict(d) if isinstance(d, dict) and "columns" in d
                         else None)
                count = 1 if batch is None else len(batch)
            except (msgspec.MsgspecError, TypeError, ValueError, KeyError) as exc:
                log.warning("skipping unreadable account summaries: %r", exc)
                continue
            for i in range(count):     # one bad row does not stop the rest of the window
                try:
                    row = AccountSummary.from_dict(d) if batch is None else batch.row(i)
                    passed += self.detector.add(row)
                except (TypeError, ValueError, KeyError) as exc:
                    log.warning("skipping an unreadable account summary: %r", exc)
                except Exception as exc:
                    self.internal_errors += 1
                    log.error("internal error on an account summary: %r; skipped", exc,
                              exc_info=True)
        self.dirty = True
        return passed + self._closing(self.detector.close_ready)

    def flush(self) -> list[Finding]:
        """Close every open window (the summaries stream went quiet)."""
        if not self.detector.open_windows:
            return []
        self.dirty = True
        return self._closing(self.detector.flush)

    def _closing(self, close: Callable[[], list[Finding]]) -> list[Finding]:
        try:
            return close()
        except Exception as exc:
            self.internal_errors += 1
            log.error("internal error closing cross-account windows: %r", exc, exc_info=True)
            return []
