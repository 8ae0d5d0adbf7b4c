"""Raw message values -> :class:`models.batch.RequestColumns`, a whole batch at a time.

This is the worker's hot path, so it does per event only what must be per event: one
msgspec decode (which also enforces the contract's types and bounds) and one transpose of
the decoded structs into field tuples. Everything else -- timestamp range, fingerprint hex,
hashing strings, raw-prompt fingerprints -- runs once per batch over whole columns.

Strings the detectors only compare (API key, network, ASN, user agent, model) become
stable 32-bit hashes (CRC-32: the same in every process, so restored state lines up),
through caches that cost one dict lookup for a value seen before. ``event_id`` becomes
the process's own 64-bit string hash: duplicate keys never leave the process (after a
restart the index is rebuilt from the input), so they need not be stable across runs.

A batch with any bad message takes the careful path for that batch: each message goes
through :class:`~streams.records.EventDecoder` on its own, so one bad message never
affects the others and every rejection names its reason.
"""

from __future__ import annotations

import contextlib
import gc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import numpy as np

from models.batch import RequestColumns
from models.simhash import simhash64_many
from streams.nesting import too_deep_in_batch
from streams.records import (
    MAX_MESSAGE_BYTES,
    MAX_TS_MS,
    MIN_TS_MS,
    EventDecoder,
    Rejection,
    RequestEvent,
    is_hex_fingerprint,
    is_utf8,
    timestamp_rejection,
    ts_to_ms,
)

__all__ = ["ColumnBuilder", "DecodedBatch", "network_of", "networks_of"]


def network_of(ip: str) -> str:
    """The /24 of an IPv4 address (also inside an IPv6 one) or the /48 of an IPv6 address.

    >>> network_of("203.0.113.77"), network_of("2001:db8:abcd:12::1"), network_of("::ffff:10.1.2.3")
    ('203.0.113', '2001:db8:abcd', '::ffff:10.1.2')
    """
    if "." in ip:
        return ip.rpartition(".")[0]
    return ":".join(ip.split(":")[:3])


def networks_of(ips: tuple[str | None, ...]) -> list[str | None]:
    """:func:`network_of` of many addresses (``None`` stays ``None``), IPv4 in one pass.

    >>> networks_of(("10.0.0.1", None, "2001:db8:abcd:12::1"))
    ['10.0.0', None, '2001:db8:abcd']
    """
    out = [None if ip is None else ip.rpartition(".")[0] for ip in ips]
    if "" in out:   # addresses without a dot: IPv6
        out = [net if net != "" else network_of(ip) for net, ip in zip(out, ips, strict=True)]  # type: ignore[arg-type]
    return out


class _HashCache(dict[str | None, int]):
    """value -> CRC-32 (never 0; ``None`` -> 0), computed on a miss; cleared when full."""

    def __init__(self, limit: int, salt: bytes = b"") -> None:
        super().__init__({None: 0})
        self.limit = limit
        self.salt = salt

    def __missing__(self, value: str) -> int:
        if len(self) >= self.limit:
            self.clear()
            self[None] = 0
        h = self[value] = zlib.crc32(self.salt + value.encode()) or 1
        return h


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch of raw values after decoding: columns for the accepted ones, reasons for the rest."""

    columns: RequestColumns
    kept: list[int]                          # index into the input of each column row
    rejected: list[tuple[int, Rejection]]    # (index into the input, why), input order

    def __len__(self) -> int:
        return len(self.kept)


_N_FIELDS = len(RequestEvent.__struct_fields__)
_F = {name: i for i, name in enumerate(RequestEvent.__struct_fields__)}


class ColumnBuilder:
    """Decodes batches of raw values (or already-decoded events) into columns.

    >>> b = ColumnBuilder()
    >>> ok = (b'{"event_id":"e","ts":1700000000000,"account_id":"a","api_key_id":"k",'
    ...       b'"model":"m","endpoint":"/x","status":429,"prompt_tokens":1,'
    ...       b'"completion_tokens":2,"flags":["cot_request"],"ip":"10.1.2.3"}')
    >>> batch = b.decode([ok, b"not json", ok.replace(b'"status":429', b'"status":700')])
    >>> batch.kept, [(i, r.code) for i, r in batch.rejected]
    ([0], [(1, 'not_json'), (2, 'out_of_range')])
    >>> cols = batch.columns
    >>> cols.status.tolist(), cols.cot.tolist(), int(cols.net_hash[0]) == zlib.crc32(b"net:10.1.2")
    ([429], [True], True)
    """

    def __init__(self, cache_size: int = 1_000_000) -> None:
        self._decode_one = msgspec.json.Decoder(RequestEvent).decode
        self._careful = EventDecoder(check_fingerprint_hex=False)
        self._strings = _HashCache(cache_size)
        self._nets = _HashCache(cache_size, salt=b"net:")   # network (not address) -> hash

    # -- raw values -------------------------------------------------------------------
    def decode(self, values: list[bytes | None]) -> DecodedBatch:
        """Decode, validate and columnise one batch; bad values come back as rejections."""
        with _collector_paused():
            return self._decode(values)

    def build(self, events: list[RequestEvent]) -> RequestColumns:
        """Columns of events decoded elsewhere (offline tools); invalid ones are dropped."""
        with _collector_paused():
            return self._columns(events, list(range(len(events))), []).columns

    def _decode(self, values: list[bytes | None]) -> DecodedBatch:
        events: list[RequestEvent] | None = None
        if values and None not in values:
            try:
                if (max(map(len, values)) <= MAX_MESSAGE_BYTES   # type: ignore[arg-type]
                        and not too_deep_in_batch(values)  # type: ignore[arg-type]
                        and all(map(is_utf8, values))):  # type: ignore[arg-type]
                    events = list(map(self._decode_one, values))  # type: ignore[arg-type]
            except (msgspec.MsgspecError, RecursionError):
                events = None
        if events is not None:
            return self._columns(events, list(range(len(values))), [])
        # the careful path: one message at a time, each with its own verdict
        kept: list[int] = []
        good: list[RequestEvent] = []
        rejected: list[tuple[int, Rejection]] = []
        for i, v in enumerate(values):
            r = self._careful.decode(v)
            if type(r) is RequestEvent:
                good.append(r)
                kept.append(i)
            else:
                assert isinstance(r, Rejection)
                rejected.append((i, r))
        return self._columns(good, kept, rejected)

    # -- columns ----------------------------------------------------------------------
    def _columns(self, events: list[RequestEvent], kept: list[int],
                 rejected: list[tuple[int, Rejection]]) -> DecodedBatch:
        n = len(events)
        if n == 0:
            return DecodedBatch(RequestColumns.from_lists(account_ids=[]), kept, rejected)
        f = list(zip(*map(msgspec.structs.astuple, events), strict=True))
        bad: dict[int, Rejection] = {}
        ts = self._timestamps(f[_F["ts"]], bad)
        fps = self._fingerprints(f[_F["prompt_fp"]], f[_F["prompt"]])
        prompt_fp = self._parse_hex(fps, bad)
        cols = self._assemble(f, ts, fps, prompt_fp)
        if bad:
            drop = sorted(bad)
            keep = np.ones(n, dtype=bool)
            keep[drop] = False
            cols = cols.take(keep)
            rejected = sorted(rejected + [(kept[i], bad[i]) for i in drop], key=lambda x: x[0])
            kept = [k for i, k in enumerate(kept) if keep[i]]
        return DecodedBatch(cols, kept, rejected)

    @staticmethod
    def _timestamps(raw: tuple[int | object, ...], bad: dict[int, Rejection]) -> np.ndarray:
        try:
            ts = np.array(raw, dtype=np.int64)
        except (TypeError, OverflowError):   # RFC 3339 datetimes, or ints beyond int64
            conv = []
            for i, t in enumerate(raw):
                if type(t) is int:
                    conv.append(t if -(2 ** 63) <= t < 2 ** 63 else 0)
                    continue
                ms = ts_to_ms(t)  # type: ignore[arg-type]
                if ms is None:
                    bad[i] = timestamp_rejection(t)  # type: ignore[arg-type]
                conv.append(ms or 0)
            ts = np.array(conv, dtype=np.int64)
        out = np.flatnonzero((ts < MIN_TS_MS) | (ts >= MAX_TS_MS))
        for i in out.tolist():
            bad.setdefault(i, timestamp_rejection(raw[i]))  # type: ignore[arg-type]
        return ts

    @staticmethod
    def _fingerprints(fps: tuple[str | None, ...], prompts: tuple[str | None, ...]) -> list[str | None]:
        """``prompt_fp`` per event, raw ``prompt`` text fingerprinted where no fp was sent."""
        out = list(fps)
        if prompts.count(None) != len(prompts):
            todo = [i for i, p in enumerate(prompts) if p is not None and fps[i] is None]
            if todo:
                hashed = simhash64_many([prompts[i] for i in todo]).tolist()  # type: ignore[misc]
                for i, h in zip(todo, hashed, strict=True):
                    out[i] = f"{h:016x}"
        return out

    @staticmethod
    def _parse_hex(fps: list[str | None], bad: dict[int, Rejection]) -> np.ndarray:
        """All fingerprints in one ``bytes.fromhex`` call (missing ones as 0)."""
        text = "".join([_ZERO_FP if f is None else f for f in fps])
        try:
            raw = bytes.fromhex(text)
            if len(raw) == 8 * len(fps):   # fromhex skips whitespace: short means some were bad
                return np.frombuffer(raw, dtype=">u8").astype(np.uint64)
        except ValueError:
            pass
        for i, fp in enumerate(fps):
            if fp is not None and not is_hex_fingerprint(fp):
                bad.setdefault(i, Rejection("out_of_range", "prompt_fp must be 16 hex characters"))
        return _parse_hex_lenient(fps)

    def _assemble(self, f: list[tuple[object, ...]], ts: np.ndarray, fps: list[str | None],
                  prompt_fp: np.ndarray) -> RequestColumns:
        strings = self._strings.__getitem__
        n = len(ts)
        asn = _ints_or_zero(f[_F["asn"]]).astype(np.uint64)
        asn_hash = ((asn * np.uint64(2654435761)) & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
        asn_hash[asn == 0] = 0
        asn_hash[(asn != 0) & (asn_hash == 0)] = 1
        flags = f[_F["flags"]]
        if flags.count(None) == len(flags):
            cot = np.zeros(len(flags), dtype=np.bool_)
        else:
            cot = np.array([x is not None and "cot_request" in x for x in flags],  # type: ignore[operator]
                           dtype=np.bool_)
        has_fp = (np.ones(len(fps), dtype=np.bool_) if None not in fps
                  else np.array([x is not None for x in fps], dtype=np.bool_))
        return RequestColumns(
            account_ids=list(f[_F["account_id"]]),  # type: ignore[arg-type]
            ts=ts,
            prompt_tokens=np.array(f[_F["prompt_tokens"]], dtype=np.int64),
            completion_tokens=np.array(f[_F["completion_tokens"]], dtype=np.int64),
            reasoning_tokens=_ints_or_zero(f[_F["reasoning_tokens"]]),
            status=np.array(f[_F["status"]], dtype=np.int64),
            key_hash=np.fromiter(map(strings, f[_F["api_key_id"]]), np.uint32, n),
            net_hash=np.fromiter(map(self._nets.__getitem__, networks_of(f[_F["ip"]])),  # type: ignore[arg-type]
                                 np.uint32, n),
            asn_hash=asn_hash,
            ua_hash=np.fromiter(map(strings, f[_F["user_agent"]]), np.uint32, n),
            model_hash=np.fromiter(map(strings, f[_F["model"]]), np.uint32, n),
            prompt_fp=prompt_fp,
            has_fp=has_fp,
            cot=cot,
            logprobs=np.array(f[_F["logprobs"]], dtype=np.bool_),      # None -> False
            logit_bias=np.array(f[_F["logit_bias"]], dtype=np.bool_),
            dedup_key=np.fromiter(map(hash, f[_F["event_id"]]), np.int64, n).view(np.uint64),
        )


_ZERO_FP = "0" * 16


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is columnised.

    The transpose makes one short-lived tuple per event. With the collector on, every 700
    of them start a collection that walks them, and as they survive into older generations
    the whole heap: measured at 3x the cost of the transpose itself (2.6 of 8 us an event).
    They hold no cycles and reference counting frees them when the batch is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_hex_lenient(fps: list[str | None]) -> np.ndarray:
    """Fingerprints one by one, invalid ones as 0 (their rows are dropped anyway)."""
    return np.array([int(x, 16) if x is not None and is_hex_fingerprint(x) else 0 for x in fps],
                    dtype=np.uint64)


def _ints_or_zero(values: tuple[object, ...]) -> np.ndarray:
    """An optional integer field as int64, absent values as 0."""
    if None not in values:
        return np.array(values, dtype=np.int64)
    return np.array([0 if v is None else v for v in values], dtype=np.int64)
