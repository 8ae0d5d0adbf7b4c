"""Validation for the replay loop: the worker's verdict on an event, at a fraction of the cost.

The worker accepts an event when :class:`~streams.records.EventDecoder` does and its
``prompt_fp`` (if any) is 16 hex digits (a ``pattern`` in the decoder once; now checked for
a whole batch by the worker, since msgspec runs Python's ``re`` per value for a pattern).
The replay tool decodes a batch in one loop into a shape that is RequestEvent made stricter
(integer ``ts`` only, no raw ``prompt``, ``prompt_fp`` exactly 16 characters) and checks the
rest by hand (hex digits with ``str.strip``, ``ts`` in range). Anything that shape refuses or
that is unusual (RFC 3339 ``ts``, a raw prompt, a ``ts`` out of range, a batch with an
oversized line) goes to ``EventDecoder`` for the real answer, plus the hex check. So the
tool accepts exactly what the worker accepts (tests check it against the decoder), and its
rejections carry the decoder's reasons.
"""

from __future__ import annotations

import functools
import string
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec

from streams.nesting import too_deep, too_deep_in_batch
from streams.records import (  # the decoder's own bounds, so the two cannot drift apart
    MAX_MESSAGE_BYTES,
    MAX_TS_MS,
    MIN_TS_MS,
    EventDecoder,
    Rejection,
    RequestEvent,
    is_utf8,
)

__all__ = ["EventValidator", "is_fingerprint"]

_HEX = string.hexdigits       # [0-9a-fA-F]


def is_fingerprint(fp: str) -> bool:
    """16 hex digits: a 64-bit SimHash as the contract writes it.

    >>> is_fingerprint("00ff00ff00ff00FF"), is_fingerprint("00ff00ff00ff00fg"), is_fingerprint("0f")
    (True, False, False)
    """
    return len(fp) == 16 and not fp.strip(_HEX)


@functools.cache
def _shape() -> type[msgspec.Struct]:
    """RequestEvent's fields and bounds, but stricter where a check would cost Python time:
    ``ts`` an integer only (RFC 3339 goes the exact way), no raw ``prompt`` (it must be
    fingerprinted), and ``prompt_fp`` 16 characters (no pattern: hex is checked by hand)."""
    hints = typing.get_type_hints(RequestEvent, include_extras=True)
    special: dict[str, Any] = {
        "ts": int,
        "prompt": None,
        "prompt_fp": Annotated[str, msgspec.Meta(min_length=16, max_length=16)] | None,
    }
    fields: list[Any] = []
    for f in msgspec.structs.fields(RequestEvent):
        tp = special.get(f.name, hints[f.name])
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
        self._fast: Callable[[bytes], Any] = msgspec.json.Decoder(_shape()).decode
        self._decoder = EventDecoder().decode

    def _exact(self, raw: bytes | None) -> Any:
        """The decoder's verdict, and the worker's fingerprint rule on top."""
        ev = self._decoder(raw)
        if isinstance(ev, RequestEvent) and ev.prompt_fp is not None \
                and not is_fingerprint(ev.prompt_fp):
            return Rejection("out_of_range", f"prompt_fp {ev.prompt_fp!r} is not 16 hex digits")
        return ev

    def check(self, raw: bytes | None) -> Any:
        """One value: an event, or :class:`Rejection`."""
        if raw is None or too_deep(raw) or not is_utf8(raw):
            return self._exact(raw)
        try:
            ev = self._fast(raw)
        except (msgspec.DecodeError, TypeError, RecursionError):   # the decoder decides
            return self._exact(raw)
        fp = ev.prompt_fp
        if (fp is not None and fp.strip(_HEX)) or not MIN_TS_MS <= ev.ts < MAX_TS_MS \
                or len(raw) > MAX_MESSAGE_BYTES:  # type: ignore[arg-type]
            return self._exact(raw)
        return ev

    def check_batch(self, values: Sequence[bytes | None]) -> tuple[list[Any], list[tuple[int, Rejection]]]:
        """``(events, rejections)``: ``events[i]`` is the event of ``values[i]`` or ``None``;
        ``rejections`` lists ``(i, Rejection)`` for the ``None`` ones. The replay loop's path:
        one Python-level loop per batch, no call per event."""
        checked: list[Any] = []
        rejections: list[tuple[int, Rejection]] = []
        try:
            longest = max(map(len, values), default=0)  # type: ignore[arg-type]
        except TypeError:                        # a None value: a tombstone read from a topic
            longest = MAX_MESSAGE_BYTES + 1
        if (longest > MAX_MESSAGE_BYTES or too_deep_in_batch(values)  # type: ignore[arg-type]
                or not all(map(is_utf8, values))):  # type: ignore[arg-type]
            # rare: the careful way
            for i, raw in enumerate(values):
                ev = self.check(raw)
                if type(ev) is Rejection:
                    rejections.append((i, ev))
                    ev = None
                checked.append(ev)
            return checked, rejections
        fast, exact = self._fast, self._exact
        append = checked.append
        for raw in values:
            try:
                ev = fast(raw)  # type: ignore[arg-type]
            except (msgspec.DecodeError, TypeError, RecursionError):
                ev = exact(raw)
                if type(ev) is Rejection:
                    rejections.append((len(checked), ev))
                    ev = None
                append(ev)
                continue
            fp = ev.prompt_fp
            if (fp is not None and fp.strip(_HEX)) or not MIN_TS_MS <= ev.ts < MAX_TS_MS:
                ev = exact(raw)
                if type(ev) is Rejection:
                    rejections.append((len(checked), ev))
                    ev = None
            append(ev)
        return checked, rejections
