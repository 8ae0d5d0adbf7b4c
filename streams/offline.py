"""Detection over recorded events without Kafka, on the worker's own code path.

Events are split over ``partitions`` partition monitors the way a producer keying by
``account_id`` splits the topic (librdkafka's default partitioner: CRC32 of the key), and
each partition's batches go through :func:`~streams.pipeline.fold_batch` — the worker's
decode, monitor step and summary encoding. The encoded summaries feed a
:class:`~streams.cross_account.CrossAccountView` exactly as the summaries topic does. Used by
``xwatch detect``, ``xwatch evaluate --scenario`` and the detection tests.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable

import msgspec

from models.incidents import Finding
from models.monitor import MonitorConfig, PartitionMonitor
from streams.alerts import Alert
from streams.columns import ColumnBuilder
from streams.cross_account import CrossAccountView
from streams.engine import finding_to_alert, monitor_config
from streams.pipeline import encode_summaries, fold_batch
from streams.records import AccountRecord
from streams.settings import Settings

__all__ = ["detect_offline", "partition_of"]


class _Key(msgspec.Struct):
    account_id: str = ""


_key_of = msgspec.json.Decoder(_Key).decode


def partition_of(value: bytes, partitions: int) -> int:
    """The partition a producer keying by ``account_id`` would pick (0 when unreadable)."""
    try:
        key = _key_of(value).account_id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return 0
    return zlib.crc32(key.encode()) % partitions


def detect_offline(values: Iterable[bytes], config: MonitorConfig | None = None,
                   partitions: int = 4, batch_size: int = 10_000,
                   accounts: Iterable[AccountRecord] = (),
                   settings: Settings | None = None) -> list[Alert]:
    """Alerts the worker would emit for these raw event values (the end of input flushes).

    ``accounts`` plays the part of the account stream (payment fingerprints, ages, tiers);
    ``config`` defaults to the worker's (:func:`~streams.engine.monitor_config`)."""
    settings = settings or Settings()
    registry = {r.account_id: r for r in accounts}
    config = config or monitor_config(settings)
    monitors = [PartitionMonitor(config, profiles=registry.get) for _ in range(partitions)]
    pending: list[list[bytes]] = [[] for _ in range(partitions)]
    builder = ColumnBuilder()
    view = CrossAccountView(settings)
    findings: list[Finding] = []

    def drain(p: int) -> None:
        if pending[p]:
            out = fold_batch(monitors[p], builder, pending[p], None, registry.get)  # type: ignore[arg-type]
            findings.extend(out.findings)
            findings.extend(view.add([v for _, v in out.summaries]))
            pending[p] = []

    for raw in values:
        p = partition_of(raw, partitions)
        pending[p].append(raw)
        if len(pending[p]) >= batch_size:
            drain(p)
    for p in range(partitions):
        drain(p)
        findings.extend(monitors[p].flush())
        findings.extend(view.add([v for _, v in encode_summaries(monitors[p].drain_summaries(),
                                                                  registry.get)]))
    findings.extend(view.flush())
    now = int(time.time() * 1000)
    return [finding_to_alert(f, now) for f in findings]
