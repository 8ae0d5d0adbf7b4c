"""Run the detectors over recorded events without Kafka: for tuning, tests and analysts.

Events are split over ``partitions`` monitors by account (like the topic's key
partitioning), decoded and validated exactly as the worker does, and fed in batches.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable

from models.coordination import CoordinationDetector
from models.incidents import Finding
from models.monitor import MonitorConfig, PartitionMonitor
from streams.alerts import Alert
from streams.columns import ColumnBuilder
from streams.engine import finding_to_alert
from streams.records import AccountRecord, EventDecoder, RequestEvent

__all__ = ["detect_offline"]


def detect_offline(values: Iterable[bytes], config: MonitorConfig | None = None,
                   partitions: int = 4, batch_size: int = 10_000,
                   accounts: Iterable[AccountRecord] = ()) -> list[Alert]:
    """Alerts the worker would emit for these raw event values (end of input flushes).

    ``accounts`` plays the part of the account stream (payment fingerprints, ages, tiers)."""
    registry = {r.account_id: r for r in accounts}
    config = config or MonitorConfig()
    monitors = [PartitionMonitor(config, profiles=registry.get) for _ in range(partitions)]
    pending: list[list[RequestEvent]] = [[] for _ in range(partitions)]
    decoder, builder = EventDecoder(), ColumnBuilder()
    findings: list[Finding] = []
    coordination = CoordinationDetector(config.window_ms, cooldown_windows=config.cooldown_windows)

    def cross_account(p: int) -> None:
        for s in monitors[p].drain_summaries():
            rec = registry.get(s.account_id)
            coordination.add(s if rec is None else s.with_account(rec.payment_fp, rec.created_ts))
        findings.extend(coordination.close_ready())

    def drain(p: int) -> None:
        if pending[p]:
            cols = builder.build(pending[p])   # drops what the worker sends to the DLQ
            findings.extend(monitors[p].step(cols).findings)
            pending[p] = []
        cross_account(p)

    for raw in values:
        ev = decoder.decode(raw)
        if not isinstance(ev, RequestEvent):
            continue
        p = zlib.crc32(ev.account_id.encode()) % partitions
        pending[p].append(ev)
        if len(pending[p]) >= batch_size:
            drain(p)
    for p in range(partitions):
        drain(p)
        findings.extend(monitors[p].flush())
        cross_account(p)
    findings.extend(coordination.flush())
    now = int(time.time() * 1000)
    return [finding_to_alert(f, now) for f in findings]
