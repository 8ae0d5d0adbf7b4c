"""Wire records of the contract (v1): the request event, the account record, DLQ entries.

Decoding is msgspec's typed decode, which also enforces the contract's types and bounds;
a failure becomes a :class:`Rejection` (a DLQ reason), never an exception on the hot path.
Raw ``prompt`` text is fingerprinted into ``prompt_fp`` here and never kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from models.simhash import format_fp, simhash64

__all__ = [
    "MAX_MESSAGE_BYTES", "MAX_TS_MS", "MIN_TS_MS", "AccountRecord", "DeadLetter", "EventDecoder", "Rejection",
    "RequestEvent", "timestamp_rejection", "ts_to_ms",
]

MAX_MESSAGE_BYTES = 64 * 1024
MIN_TS_MS = 946_684_800_000      # 2000-01-01
MAX_TS_MS = 4_102_444_800_000    # 2100-01-01

Str128 = Annotated[str, msgspec.Meta(max_length=128)]
Str256 = Annotated[str, msgspec.Meta(max_length=256)]
NonNeg = Annotated[int, msgspec.Meta(ge=0)]
Status = Annotated[int, msgspec.Meta(ge=100, le=599)]
# 16 characters here; that they are hex is checked for a whole batch at once (columns.py)
Fingerprint = Annotated[str, msgspec.Meta(min_length=16, max_length=16)]


class RequestEvent(msgspec.Struct, frozen=True, gc=False):
    """One API request, as gateways send it. Unknown fields are ignored."""

    event_id: Str128
    ts: int | dt.datetime
    account_id: Str128
    api_key_id: Str128
    model: Str128
    endpoint: Str256
    status: Status
    prompt_tokens: NonNeg
    completion_tokens: NonNeg
    ip: str | None = None
    asn: int | None = None
    user_agent: str | None = None
    reasoning_tokens: NonNeg | None = None
    latency_ms: NonNeg | None = None
    prompt_fp: Fingerprint | None = None
    prompt: str | None = None
    lang: str | None = None
    flags: list[str] | None = None
    logprobs: bool | None = None
    logit_bias: bool | None = None


class AccountRecord(msgspec.Struct, frozen=True):
    """Optional account stream (compacted, key = account_id)."""

    account_id: Str128
    created_ts: int | None = None
    tier: str | None = None
    payment_fp: str | None = None
    country: str | None = None
    verified: bool | None = None


class DeadLetter(msgspec.Struct, frozen=True):
    """Value written to the DLQ topic."""

    reason: str
    topic: str
    partition: int
    offset: int
    raw: str


class Rejection(msgspec.Struct, frozen=True):
    """Why an input message was not accepted: ``code`` is one of a small fixed set."""

    code: str     # not_json | missing_field | wrong_type | out_of_range | negative_tokens
    detail: str   # | oversized | bad_timestamp | late

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


_HEX = frozenset("0123456789abcdefABCDEF")


def is_hex_fingerprint(fp: str) -> bool:
    """What the contract calls a prompt fingerprint: exactly 16 hex characters.

    >>> is_hex_fingerprint("00ff00ff00ff00ff"), is_hex_fingerprint("00ff00ff 0ff00ff")
    (True, False)
    """
    return len(fp) == 16 and _HEX.issuperset(fp)


def ts_to_ms(ts: int | dt.datetime) -> int | None:
    """Epoch milliseconds, or ``None`` when the timestamp is unusable.

    >>> ts_to_ms(1_700_000_000_000)
    1700000000000
    >>> ts_to_ms(dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc))
    1700000000000
    >>> ts_to_ms(dt.datetime(2023, 11, 14)) is None   # no offset: not RFC 3339
    True
    >>> ts_to_ms(17) is None                           # seconds, not ms, or garbage
    True
    """
    if isinstance(ts, dt.datetime):
        if ts.tzinfo is None:
            return None
        ms = int(ts.timestamp() * 1000)
    else:
        ms = ts
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        return None
    return ms


def timestamp_rejection(ts: int | dt.datetime) -> Rejection:
    """Why a timestamp :func:`ts_to_ms` refuses goes to the DLQ.

    >>> timestamp_rejection(17).detail
    'ts=17 is not epoch milliseconds in 2000..2100'
    """
    if isinstance(ts, dt.datetime):
        return Rejection("bad_timestamp", f"timestamp {ts!r} has no UTC offset or is out of range")
    return Rejection("bad_timestamp", f"ts={ts} is not epoch milliseconds in 2000..2100")


def _classify(message: str, field_hint: str) -> Rejection:
    if "missing required field" in message:
        return Rejection("missing_field", message)
    if message.startswith("Expected `") and (">=" in message or "<=" in message):
        if "tokens" in field_hint or "latency" in field_hint:
            return Rejection("negative_tokens" if "tokens" in field_hint else "out_of_range", message)
        return Rejection("out_of_range", message)
    if "length <=" in message or "matching regex" in message:
        return Rejection("out_of_range", message)
    if "$.ts" in message:
        return Rejection("bad_timestamp", message)
    if message.startswith("Expected `"):
        return Rejection("wrong_type", message)
    return Rejection("not_json", message)


class EventDecoder:
    """Decode and validate raw message values into :class:`RequestEvent` objects.

    >>> d = EventDecoder()
    >>> ev = d.decode(b'{"event_id":"e1","ts":1700000000000,"account_id":"a","api_key_id":"k",'
    ...               b'"model":"m","endpoint":"/v1/x","status":200,"prompt_tokens":5,'
    ...               b'"completion_tokens":9,"prompt":"hello world"}')
    >>> ev.prompt is None, ev.prompt_fp == format_fp(simhash64("hello world"))
    (True, True)
    >>> d.decode(b'{"event_id": 1}').code
    'wrong_type'
    >>> d.decode(b'nope').code
    'not_json'
    """

    def __init__(self, check_fingerprint_hex: bool = True) -> None:
        # The worker turns this off: its column builder checks a whole batch of fingerprints
        # in one bytes.fromhex call (see streams/columns.py) instead of one regex per event.
        self._decoder = msgspec.json.Decoder(RequestEvent)
        self._check_hex = check_fingerprint_hex

    def decode(self, raw: bytes | None) -> RequestEvent | Rejection:
        if raw is None:
            return Rejection("not_json", "empty message")
        if len(raw) > MAX_MESSAGE_BYTES:
            return Rejection("oversized", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
        try:
            event = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            text = str(exc)
            return _classify(text, text.rsplit("$.", 1)[-1] if "$." in text else "")
        except msgspec.DecodeError as exc:
            return Rejection("not_json", str(exc))
        ts = event.ts
        ms = ts_to_ms(ts)
        if ms is None:
            return timestamp_rejection(ts)
        if not isinstance(ts, int):   # an RFC 3339 datetime: store epoch ms
            event = msgspec.structs.replace(event, ts=ms)
        if self._check_hex and event.prompt_fp is not None and not is_hex_fingerprint(event.prompt_fp):
            return Rejection("out_of_range", "prompt_fp must be 16 hex characters")
        if event.prompt is not None:
            # Fingerprint on arrival, then drop the text: it is never stored or forwarded.
            fp = event.prompt_fp or format_fp(simhash64(event.prompt))
            event = msgspec.structs.replace(event, prompt=None, prompt_fp=fp)
        return event


def dead_letter(rejection: Rejection, topic: str, partition: int, offset: int,
                raw: bytes | None) -> bytes:
    """Encode a DLQ value. ``raw`` is cut to 4 KiB; a raw ``prompt`` is never included."""
    text = (raw or b"")[:4096].decode("utf-8", errors="replace")
    if b'"prompt"' in (raw or b""):
        text = _redact_prompt(raw or b"")
    return msgspec.json.encode(DeadLetter(rejection.reason, topic, partition, offset, text))


def _redact_prompt(raw: bytes) -> str:
    """The raw value without its ``prompt`` field, or a placeholder when it cannot be parsed."""
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "<unparseable message containing a prompt field: withheld>"
    if isinstance(obj, dict):
        obj.pop("prompt", None)
        return msgspec.json.encode(obj)[:4096].decode("utf-8", errors="replace")
    return "<withheld>"
