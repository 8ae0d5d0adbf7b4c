"""Decoded request events -> :class:`models.batch.RequestColumns` (one pass per batch).

Strings the detectors only compare (API key, network, ASN, user agent, model) become
stable 32-bit hashes (CRC-32: the same in every process, so restored state lines up).
A small cache keeps the per-event cost to a dict lookup for values seen before.
"""

from __future__ import annotations

import zlib

import numpy as np

from models.batch import RequestColumns
from streams.records import RequestEvent

__all__ = ["ColumnBuilder", "network_of"]


def network_of(ip: str) -> str:
    """The /24 of an IPv4 address or the /48 of an IPv6 address (as a string).

    >>> network_of("203.0.113.77"), network_of("2001:db8:abcd:12::1")
    ('203.0.113', '2001:db8:abcd')
    """
    if ":" in ip:
        return ":".join(ip.split(":")[:3])
    return ip.rsplit(".", 1)[0]


class ColumnBuilder:
    """Turns a list of events into columns, with a bounded cache of string hashes.

    >>> from streams.records import EventDecoder
    >>> ev = EventDecoder().decode(b'{"event_id":"e","ts":1700000000000,"account_id":"a",'
    ...     b'"api_key_id":"k","model":"m","endpoint":"/x","status":429,"prompt_tokens":1,'
    ...     b'"completion_tokens":2,"flags":["cot_request"],"ip":"10.1.2.3"}')
    >>> cols = ColumnBuilder().build([ev])
    >>> cols.status.tolist(), cols.cot.tolist(), int(cols.net_hash[0]) == zlib.crc32(b"net:10.1.2")
    ([429], [True], True)
    """

    def __init__(self, cache_size: int = 1_000_000) -> None:
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def _h(self, value: str | None) -> int:
        if value is None:
            return 0
        h = self._cache.get(value)
        if h is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            h = zlib.crc32(value.encode()) or 1
            self._cache[value] = h
        return h

    def _net(self, ip: str | None) -> int:
        return 0 if ip is None else self._h("net:" + network_of(ip))

    def build(self, events: list[RequestEvent]) -> RequestColumns:
        h = self._h
        n = len(events)
        fps = [e.prompt_fp for e in events]
        flags = [e.flags for e in events]
        ts = np.fromiter((e.ts for e in events), dtype=np.int64, count=n)
        event_crc = np.fromiter((zlib.crc32(e.event_id.encode()) for e in events),
                                dtype=np.uint64, count=n)
        dedup_key = (ts.astype(np.uint64) << np.uint64(32)) ^ event_crc
        return RequestColumns(
            account_ids=[e.account_id for e in events],
            ts=ts,
            prompt_tokens=np.fromiter((e.prompt_tokens for e in events), np.int64, n),
            completion_tokens=np.fromiter((e.completion_tokens for e in events), np.int64, n),
            reasoning_tokens=np.fromiter((e.reasoning_tokens or 0 for e in events), np.int64, n),
            status=np.fromiter((e.status for e in events), np.int64, n),
            key_hash=np.fromiter((h(e.api_key_id) for e in events), np.uint32, n),
            net_hash=np.fromiter((self._net(e.ip) for e in events), np.uint32, n),
            asn_hash=np.fromiter((0 if e.asn is None else h(f"asn:{e.asn}") for e in events),
                                 np.uint32, n),
            ua_hash=np.fromiter((h(e.user_agent) for e in events), np.uint32, n),
            model_hash=np.fromiter((h(e.model) for e in events), np.uint32, n),
            prompt_fp=np.fromiter((int(f, 16) if f else 0 for f in fps), np.uint64, n),
            has_fp=np.fromiter((f is not None for f in fps), np.bool_, n),
            cot=np.fromiter((f is not None and "cot_request" in f for f in flags), np.bool_, n),
            logprobs=np.fromiter((bool(e.logprobs) for e in events), np.bool_, n),
            logit_bias=np.fromiter((bool(e.logit_bias) for e in events), np.bool_, n),
            dedup_key=dedup_key,
        )
