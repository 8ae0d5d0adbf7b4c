"""Validation for the replay loop: :class:`EventDecoder`'s verdict, at half the cost.

msgspec checks ``prompt_fp``'s ``pattern`` by calling Python's ``re`` for every event that
has one, which is ~40% of a decode. The replay tool decodes into a shape identical to
:class:`~streams.records.RequestEvent` except for that pattern, checks the common case
(integer ``ts`` in range, no raw ``prompt``, a plain 16-hex-digit ``prompt_fp``) with cheap
comparisons, and hands *anything* else to ``EventDecoder`` for the real answer. It can
therefore only accept what ``EventDecoder`` accepts (tests check the two agree), and every
rejection it reports is ``EventDecoder``'s own.
"""

from __future__ import annotations

import functools
import string
import typing
from typing import Any

import msgspec

from streams.records import (  # the decoder's own bounds, so the two cannot drift apart
    _MAX_TS,
    _MIN_TS,
    MAX_MESSAGE_BYTES,
    EventDecoder,
    Rejection,
    RequestEvent,
)

__all__ = ["FAST_PATH_FIELD", "FAST_PATH_PATTERN", "EventValidator"]

FAST_PATH_FIELD = "prompt_fp"                 # the one pattern-checked field of RequestEvent
FAST_PATH_PATTERN = "^[0-9a-fA-F]{16}$"       # ... and its pattern (a test pins both)
_HEX = string.hexdigits


@functools.cache
def _shape() -> type[msgspec.Struct]:
    hints = typing.get_type_hints(RequestEvent, include_extras=True)
    fields: list[Any] = []
    for f in msgspec.structs.fields(RequestEvent):
        tp = str | None if f.name == FAST_PATH_FIELD else hints[f.name]
        fields.append((f.name, tp) if f.required else (f.name, tp, f.default))
    return msgspec.defstruct("ReplayEventShape", fields, frozen=True, gc=False)


class EventValidator:
    """``check(raw)`` -> an event (``.ts`` epoch ms, ``.account_id``) or a :class:`Rejection`.

    >>> v = EventValidator()
    >>> ev = v.check(b'{"event_id":"e","ts":1700000000000,"account_id":"a","api_key_id":"k",'
    ...              b'"model":"m","endpoint":"/x","status":200,"prompt_tokens":1,'
    ...              b'"completion_tokens":2,"prompt_fp":"00ff00ff00ff00ff"}')
    >>> ev.ts, ev.account_id
    (1700000000000, 'a')
    >>> v.check(b'{"event_id":"e"}').code, v.check(None).code
    ('missing_field', 'not_json')
    """

    def __init__(self) -> None:
        self._fast = msgspec.json.Decoder(_shape()).decode
        self._exact = EventDecoder().decode

    def check(self, raw: bytes | None) -> Any:
        try:
            ev: Any = self._fast(raw)  # type: ignore[arg-type]
        except (msgspec.DecodeError, TypeError):   # invalid, or None: the decoder says why
            return self._exact(raw)
        ts = ev.ts
        if type(ts) is int and _MIN_TS <= ts < _MAX_TS and ev.prompt is None \
                and len(raw) <= MAX_MESSAGE_BYTES:  # type: ignore[arg-type]
            fp = ev.prompt_fp
            if fp is None or (len(fp) == 16 and not fp.strip(_HEX)):
                return ev
        return self._exact(raw)   # RFC 3339 ts, raw prompt, odd fingerprint, oversized...

    @staticmethod
    def is_rejection(result: object) -> bool:
        return type(result) is Rejection
