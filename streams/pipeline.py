"""One partition's batch, from raw message values to what it produces: the task every path runs.

:func:`fold_batch` is the per-partition step of the worker (:mod:`streams.engine`), of
offline detection (``xwatch detect``, ``xwatch evaluate --scenario``) and of the tests: decode
and validate the values, step the partition's monitor, and return everything that came
out — rejections and late events (for the DLQ), findings (for the alert topic) and the
account summaries for the population view, enriched from the account stream and encoded
as they travel on the summaries topic. It does no I/O; the caller sends what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from models.coordination import SummaryBatch
from models.incidents import Finding
from models.monitor import PartitionMonitor
from streams.columns import ColumnBuilder
from streams.records import AccountRecord, Rejection

__all__ = ["Folded", "encode_summaries", "fold_batch"]

RecordLookup = Callable[[str], AccountRecord | None]


@dataclass(slots=True)
class Folded:
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)   # (batch index, why)
    late: list[tuple[int, int]] = field(default_factory=list)             # (batch index, ts)
    findings: list[Finding] = field(default_factory=list)
    summaries: list[tuple[str, bytes]] = field(default_factory=list)      # (key, encoded batch)
    counted: int = 0
    duplicates: int = 0


def encode_summaries(batches: list[SummaryBatch], lookup: RecordLookup) -> list[tuple[str, bytes]]:
    """Summary batches enriched with the account stream's payment fingerprints and creation
    times, encoded (msgpack of plain data) as the summaries topic carries them: one
    message per closed window and partition."""
    encode = msgspec.msgpack.encode
    return [(str(b.window_start_ts), encode(b.with_accounts(lookup).to_dict())) for b in batches]


def fold_batch(monitor: PartitionMonitor, builder: ColumnBuilder, values: list[bytes | None],
               offsets: np.ndarray | None, lookup: RecordLookup) -> Folded:
    """Decode one partition's batch (in partition order) and step its monitor."""
    decoded = builder.decode(values)
    out = Folded(rejected=list(decoded.rejected))
    if len(decoded):
        cols, kept = decoded.columns, decoded.kept
        if offsets is not None and decoded.rejected:
            offsets = offsets[kept]
        result = monitor.step(cols, offsets)
        out.late = [(kept[i], int(cols.ts[i])) for i in result.late.tolist()]
        out.findings = result.findings
        out.counted, out.duplicates = result.counted, result.duplicates
    out.summaries = encode_summaries(monitor.drain_summaries(), lookup)
    return out
