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
from streams.nesting import MAX_NESTING, too_deep

__all__ = [
    "MAX_ASN", "MAX_COUNT", "MAX_MESSAGE_BYTES", "MAX_TS_MS", "MIN_TS_MS", "REASONS", "AccountRecord",
    "AccountRecordDecoder", "DeadLetter", "EventDecoder", "Rejection", "RequestEvent",
    "is_utf8", "timestamp_rejection", "ts_to_ms",
]

MAX_MESSAGE_BYTES = 64 * 1024
MIN_TS_MS = 946_684_800_000      # 2000-01-01
MAX_TS_MS = 4_102_444_800_000    # 2100-01-01
# Every integer that reaches a numpy column has a bound, so no value can overflow one:
MAX_COUNT = 2**32 - 1            # tokens and latency_ms: no request has 4 billion of either,
#                                  and a window's int64 sums cannot overflow
MAX_ASN = 2**32 - 1              # AS numbers are 32-bit (RFC 6793)

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str128 = Annotated[str, msgspec.Meta(max_length=128)]
Str256 = Annotated[str, msgspec.Meta(max_length=256)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
Asn = Annotated[int, msgspec.Meta(ge=0, le=MAX_ASN)]
Status = Annotated[int, msgspec.Meta(ge=100, le=599)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, lt=MAX_TS_MS)]
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
    prompt_tokens: Count
    completion_tokens: Count
    ip: str | None = None
    asn: Asn | None = None
    user_agent: str | None = None
    reasoning_tokens: Count | None = None
    latency_ms: Count | None = None
    prompt_fp: Fingerprint | None = None
    prompt: str | None = None
    lang: str | None = None
    flags: list[str] | None = None
    logprobs: bool | None = None
    logit_bias: bool | None = None


class AccountRecord(msgspec.Struct, frozen=True):
    """Optional account stream (compacted, key = account_id). Strings are bounded so a
    billing system cannot grow the worker's memory without limit."""

    account_id: Str128
    created_ts: EpochMs | None = None
    tier: Str64 | None = None
    payment_fp: Str256 | None = None
    country: Str64 | None = None
    verified: bool | None = None


class DeadLetter(msgspec.Struct, frozen=True):
    """Value written to the DLQ topic."""

    reason: str
    topic: str
    partition: int
    offset: int
    raw: str


REASONS = ("not_json", "missing_field", "wrong_type", "out_of_range", "negative_tokens",
           "oversized", "too_deep", "bad_timestamp", "late", "internal_error")


class Rejection(msgspec.Struct, frozen=True):
    """Why an input message was not accepted: ``code`` is one of :data:`REASONS`."""

    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


_HEX = frozenset("0123456789abcdefABCDEF")


def is_utf8(raw: bytes) -> bool:
    r"""Whether ``raw`` is valid UTF-8, which JSON text must be (RFC 8259, section 8.1).

    msgspec checks the strings it decodes, but skips an unknown field's value and key
    without looking at their bytes, so the whole message is checked here.

    >>> is_utf8(b'{"a": "caf\xc3\xa9"}'), is_utf8(b'{"x": "\xff"}'), is_utf8(b'"\xed\xa0\x80"')
    (True, False, False)
    """
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
    if message.startswith("Expected `") and (">=" in message or "<=" in message or "<" in message):
        if "tokens" in field_hint and ">= 0" in message:
            return Rejection("negative_tokens", message)
        return Rejection("out_of_range", message)
    if "length <=" in message or "matching regex" in message or message.startswith("Number out of range"):
        return Rejection("out_of_range", message)
    if "$.ts" in message:
        return Rejection("bad_timestamp", message)
    if message.startswith("Expected `"):
        return Rejection("wrong_type", message)
    return Rejection("not_json", message)


_any_json = msgspec.json.Decoder(msgspec.Raw).decode   # checks the syntax, keeps no value


def _invalid(raw: bytes, exc: msgspec.ValidationError) -> Rejection:
    """The reason for a typed decode's failure. msgspec validates each value as it parses,
    so a message cut short after a bad value (``..."status":2``) fails on that value first;
    a message that is not JSON at all is ``not_json`` whatever came before the break.

    >>> _invalid(b'{"status":2', msgspec.ValidationError("Expected `int` >= 100")).code
    'not_json'
    >>> _invalid(b'{"status":2,"x":1e400}', msgspec.ValidationError("Expected `int` >= 100")).code
    'out_of_range'
    """
    try:
        _any_json(raw)
    except msgspec.DecodeError as not_json:
        return Rejection("not_json", str(not_json))
    text = str(exc)
    return _classify(text, text.rsplit("$.", 1)[-1] if "$." in text else "")


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
        if too_deep(raw):
            return TOO_DEEP
        if not is_utf8(raw):
            return NOT_UTF8
        try:
            event = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return _invalid(raw, exc)
        except msgspec.DecodeError as exc:
            return Rejection("not_json", str(exc))
        except RecursionError:   # cannot happen below MAX_NESTING; never let it stop a worker
            return TOO_DEEP
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


TOO_DEEP = Rejection("too_deep", f"objects/arrays nested deeper than {MAX_NESTING} levels")
NOT_UTF8 = Rejection("not_json", "not valid UTF-8")


class AccountRecordDecoder:
    """Decode and validate one account record (the ``api.accounts`` stream).

    >>> d = AccountRecordDecoder()
    >>> d.decode(b'{"account_id": "a", "created_ts": 1700000000000, "tier": "pro"}').tier
    'pro'
    >>> d.decode(b'{"account_id": "a", "created_ts": 18446744073709551616}').code
    'out_of_range'
    >>> d.decode(b'{"account_id": "a", "x": ' + b'[' * 100 + b']' * 100 + b'}').code
    'too_deep'
    """

    def __init__(self) -> None:
        self._decoder = msgspec.json.Decoder(AccountRecord)

    def decode(self, raw: bytes) -> AccountRecord | Rejection:
        if len(raw) > MAX_MESSAGE_BYTES:
            return Rejection("oversized", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
        if too_deep(raw):
            return TOO_DEEP
        if not is_utf8(raw):
            return NOT_UTF8
        try:
            return self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return _invalid(raw, exc)
        except msgspec.DecodeError as exc:
            return Rejection("not_json", str(exc))
        except RecursionError:
            return TOO_DEEP


def dead_letter(rejection: Rejection, topic: str, partition: int, offset: int,
                raw: bytes | None) -> bytes:
    """Encode a DLQ value. ``raw`` is cut to 4 KiB; a raw ``prompt`` is never included, not
    even from an event that was JSON-encoded twice (a JSON string whose text has the field)."""
    text = (raw or b"")[:4096].decode("utf-8", errors="replace")
    if _may_hold_prompt(raw or b""):
        text = _redact_prompt(raw or b"")
    return msgspec.json.encode(DeadLetter(rejection.reason, topic, partition, offset, text))


def _redact_prompt(raw: bytes) -> str:
    """The raw value without its ``prompt`` field, or a placeholder when it cannot be parsed."""
    if too_deep(raw):
        return "<message nested too deep, containing a prompt field: withheld>"
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return "<unparseable message containing a prompt field: withheld>"
    if isinstance(obj, dict):
        obj.pop("prompt", None)
        text = msgspec.json.encode(obj)
        if not _may_hold_prompt(text):   # else one more inside (nested, or in a string)
            return text[:4096].decode("utf-8", errors="replace")
    return "<withheld>"


def _may_hold_prompt(raw: bytes) -> bool:
    """A ``"prompt"`` key (or string), also inside a JSON string (``\\"prompt\\"``)."""
    return b'"prompt"' in raw or b'prompt\\"' in raw
