"""``xwatch replay``: recorded traffic (files, or a topic between two times) into a topic at a
speed factor, and the backtest that scores the worker's alerts on it.

Pipeline: a source (:mod:`.jsonl`, :mod:`.tabular`, :mod:`.topic`) yields batches of raw
values -> :func:`.runner.replay` validates (:mod:`.validate`), windows, rewrites, paces
(:mod:`.pacing`) and produces (:mod:`.sink`) -> :mod:`.report` shows it; :mod:`.backtest`
wraps it for scoring; :mod:`.cli` is the command.

The names below are loaded on first use, so ``xwatch --help`` does not pay for Kafka,
msgspec and rich imports it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.replay.backtest import BacktestResult, run_backtest
    from streams.replay.batch import RawBatch, Source
    from streams.replay.errors import ReplayError
    from streams.replay.jsonl import JsonLinesSource
    from streams.replay.offsets import OffsetLookup, first_offset_at_or_after
    from streams.replay.pacing import Pacer
    from streams.replay.runner import InvalidInput, ReplayOptions, ReplayStats, replay
    from streams.replay.sink import TopicSink, producer_config
    from streams.replay.tabular import CsvSource, ParquetSource, parse_column_map
    from streams.replay.times import parse_speed, parse_time
    from streams.replay.topic import TopicSource
    from streams.replay.validate import EventValidator

_EXPORTS = {
    "BacktestResult": "backtest", "run_backtest": "backtest",
    "RawBatch": "batch", "Source": "batch",
    "ReplayError": "errors",
    "JsonLinesSource": "jsonl",
    "OffsetLookup": "offsets", "first_offset_at_or_after": "offsets",
    "Pacer": "pacing",
    "InvalidInput": "runner", "ReplayOptions": "runner", "ReplayStats": "runner", "replay": "runner",
    "TopicSink": "sink", "producer_config": "sink",
    "CsvSource": "tabular", "ParquetSource": "tabular", "parse_column_map": "tabular",
    "parse_speed": "times", "parse_time": "times",
    "TopicSource": "topic",
    "EventValidator": "validate",
}

__all__ = [
    "BacktestResult", "CsvSource", "EventValidator", "InvalidInput", "JsonLinesSource",
    "OffsetLookup", "Pacer", "ParquetSource", "RawBatch", "ReplayError", "ReplayOptions",
    "ReplayStats", "Source", "TopicSink", "TopicSource", "first_offset_at_or_after",
    "parse_column_map", "parse_speed", "parse_time", "producer_config", "replay", "run_backtest",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
