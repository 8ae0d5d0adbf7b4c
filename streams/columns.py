"""Decoded request events -> :class:`models.batch.RequestColumns` (one pass per batch).

Strings the detectors only compare (API key, network, ASN, user agent, model) become
stable 32-bit hashes (CRC-32: the same in every process, so restored state lines up).
A small cache keeps the per-event cost to a dict lookup for values seen before.
"""

from __future__ import annotations

import zlib
from operator import attrgetter

import numpy as np

from models.batch import RequestColumns
from streams.records import RequestEvent, is_hex_fingerprint

__all__ = ["ColumnBuilder", "InvalidFingerprints", "network_of"]


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
        self._net_cache: dict[str, int] = {}    # full IP -> hash of its network
        self._cache_size = cache_size

    def _miss(self, value: str) -> int:
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
            self._net_cache.clear()
        h = self._cache[value] = zlib.crc32(value.encode()) or 1
        return h

    def _net_miss(self, ip: str) -> int:
        if len(self._net_cache) >= self._cache_size:
            self._net_cache.clear()
        h = self._net_cache[ip] = zlib.crc32(b"net:" + network_of(ip).encode()) or 1
        return h

    def _hashes(self, values: list[str | None]) -> np.ndarray:
        c, miss = self._cache, self._miss
        return np.array([0 if v is None else c[v] if v in c else miss(v) for v in values],
                        dtype=np.uint32)

    def build(self, events: list[RequestEvent]) -> RequestColumns:
        """One attribute pass over the events, a transpose, then vectorised parsing.

        Raises :class:`InvalidFingerprints` naming the events whose ``prompt_fp`` is not hex.
        """
        n = len(events)
        if n == 0:
            return RequestColumns.from_lists(account_ids=[])
        (ts_l, pt, ct, rt, st, accounts, keys, ips, asns, uas, models, fps, flags, lp, lb,
         eids) = (list(map(get, events)) for get in _FIELDS)
        ts = np.array(ts_l, dtype=np.int64)
        nc, net_miss = self._net_cache, self._net_miss
        net = np.array([0 if ip is None else nc[ip] if ip in nc else net_miss(ip) for ip in ips],
                       dtype=np.uint32)
        asn = np.array([a or 0 for a in asns], dtype=np.uint64)
        asn_hash = ((asn * np.uint64(2654435761)) & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
        asn_hash[asn == 0] = 0
        asn_hash[(asn != 0) & (asn_hash == 0)] = 1
        has_fp = np.array([f is not None for f in fps], dtype=np.bool_)
        prompt_fp = _parse_fingerprints(fps)
        crc = np.array([zlib.crc32(e.encode()) for e in eids], dtype=np.uint64)
        return RequestColumns(
            account_ids=accounts,
            ts=ts,
            prompt_tokens=np.array(pt, dtype=np.int64),
            completion_tokens=np.array(ct, dtype=np.int64),
            reasoning_tokens=np.array([r or 0 for r in rt], dtype=np.int64),
            status=np.array(st, dtype=np.int64),
            key_hash=self._hashes(keys),
            net_hash=net,
            asn_hash=asn_hash,
            ua_hash=self._hashes(uas),
            model_hash=self._hashes(models),
            prompt_fp=prompt_fp,
            has_fp=has_fp,
            cot=np.array([f is not None and "cot_request" in f for f in flags], dtype=np.bool_),
            logprobs=np.array([x is True for x in lp], dtype=np.bool_),
            logit_bias=np.array([x is True for x in lb], dtype=np.bool_),
            dedup_key=(ts.astype(np.uint64) << np.uint64(32)) ^ crc,
        )


_FIELDS = tuple(attrgetter(name) for name in (
    "ts", "prompt_tokens", "completion_tokens", "reasoning_tokens", "status", "account_id",
    "api_key_id", "ip", "asn", "user_agent", "model", "prompt_fp", "flags", "logprobs",
    "logit_bias", "event_id"))


class InvalidFingerprints(ValueError):
    """Some events carry a ``prompt_fp`` that is not 16 hex characters."""

    def __init__(self, indices: list[int]) -> None:
        super().__init__(f"{len(indices)} events with a prompt_fp that is not hex")
        self.indices = indices


_ZERO_FP = "0" * 16


def _parse_fingerprints(fps: list[str | None]) -> np.ndarray:
    """All fingerprints in one ``bytes.fromhex`` call (missing ones as 0)."""
    text = "".join([_ZERO_FP if f is None else f for f in fps])
    try:
        raw = bytes.fromhex(text)
        if len(raw) == 8 * len(fps):   # fromhex skips whitespace: a short result means some
            return np.frombuffer(raw, dtype=">u8").astype(np.uint64)
    except ValueError:
        pass
    raise InvalidFingerprints([i for i, f in enumerate(fps)
                               if f is not None and not is_hex_fingerprint(f)])
