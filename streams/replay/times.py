"""Parsing the replay tool's time and speed arguments.

Times are RFC 3339 strings (with an offset, ``Z`` allowed) or epoch milliseconds, the same
two forms the contract allows for an event's ``ts``.
"""

from __future__ import annotations

import datetime as dt
import math

from streams.records import ts_to_ms

__all__ = ["format_ms", "parse_speed", "parse_time"]


def parse_time(text: str | int) -> int:
    """Epoch milliseconds from an RFC 3339 string or an epoch-ms integer.

    >>> parse_time("2023-11-14T22:13:20Z")
    1700000000000
    >>> parse_time("2023-11-14T23:13:20.5+01:00")
    1700000000500
    >>> parse_time("1700000000000")
    1700000000000
    >>> parse_time("2023-11-14T22:13:20")
    Traceback (most recent call last):
    ...
    ValueError: '2023-11-14T22:13:20' has no UTC offset: add Z or +HH:MM (RFC 3339)
    """
    if isinstance(text, int):
        ms: int | None = ts_to_ms(text)
    else:
        raw = text.strip()
        if raw.lstrip("-").isdigit():
            ms = ts_to_ms(int(raw))
        else:
            try:
                when = dt.datetime.fromisoformat(raw)
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a time: use RFC 3339 (2024-05-01T12:00:00Z) "
                    "or epoch milliseconds") from None
            if when.tzinfo is None:
                raise ValueError(f"{text!r} has no UTC offset: add Z or +HH:MM (RFC 3339)")
            ms = ts_to_ms(when)
    if ms is None:
        raise ValueError(f"{text!r} is not epoch milliseconds between 2000 and 2100")
    return ms


def parse_speed(text: str | float) -> float | None:
    """The speed factor; ``None`` means as fast as the broker takes it (``max``).

    >>> parse_speed("max") is None, parse_speed("60"), parse_speed("0.5x")
    (True, 60.0, 0.5)
    >>> parse_speed("0")
    Traceback (most recent call last):
    ...
    ValueError: bad speed '0': use a positive number (1 = real time, 60 = an hour a minute) or 'max'
    """
    if isinstance(text, str):
        raw = text.strip().lower()
        if raw in {"max", "inf", "unlimited"}:
            return None
        raw = raw.removesuffix("x")
    else:
        raw = str(text)
    try:
        speed = float(raw)
    except ValueError:
        speed = math.nan
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"bad speed {text!r}: use a positive number "
                         "(1 = real time, 60 = an hour a minute) or 'max'")
    return speed


def format_ms(ms: int | None) -> str:
    """RFC 3339 (UTC, milliseconds) for display.

    >>> format_ms(1700000000123)
    '2023-11-14T22:13:20.123Z'
    >>> format_ms(None)
    '-'
    """
    if ms is None:
        return "-"
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
