"""How deep a JSON message nests, checked before any decoder recurses into it.

A decoder that skips an unknown field walks it recursively, so a value nested a few
thousand levels deep exhausts the interpreter's recursion limit (``RecursionError``) and
would stop the worker on one message. Every message is therefore checked first: one that
opens more than :data:`MAX_NESTING` objects/arrays inside each other is rejected with
reason ``too_deep``. The contract's own fields nest two levels at most (``flags``).

The check costs little per batch: the openers (``{`` and ``[``) of the whole batch are
counted with numpy; only a message with more than ``MAX_NESTING`` openers can nest that
deep, and only such a message gets the exact depth (strings stripped first, so brackets in
text do not count).

>>> nesting_depth(b'{"a": [1, {"b": "[[[["}]}')
3
>>> deep = b'{"x": ' + b'[' * 70 + b']' * 70 + b'}'
>>> too_deep(deep), too_deep(b'{"text": "' + b'{' * 500 + b'"}')
(True, False)
>>> too_deep_in_batch([b'{"a": 1}', deep, b'[]'])
[1]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["MAX_NESTING", "nesting_depth", "too_deep", "too_deep_in_batch"]

MAX_NESTING = 64

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CASE = np.uint8(0xDF)            # '{' & 0xDF == '[' and '}' & 0xDF == ']': one compare each
_OPEN, _CLOSE = np.uint8(ord("[")), np.uint8(ord("]"))


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of objects and arrays in ``raw`` (0 for a scalar).

    Brackets inside JSON strings do not count. For text that is not JSON the figure is
    still defined (brackets are counted as they come), so the check never raises.
    """
    body = np.frombuffer(_STRING.sub(b"", raw), dtype=np.uint8) & _CASE
    step = (body == _OPEN).astype(np.int64) - (body == _CLOSE)
    return int(np.cumsum(step).max(initial=0))


def too_deep(raw: bytes, limit: int = MAX_NESTING) -> bool:
    """True when ``raw`` nests deeper than ``limit``."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    return nesting_depth(raw) > limit


def too_deep_in_batch(values: Sequence[bytes], limit: int = MAX_NESTING) -> list[int]:
    """Indices of the values that nest deeper than ``limit`` (ascending)."""
    if not values:
        return []
    joined = np.frombuffer(b"".join(values), dtype=np.uint8)
    openers = np.flatnonzero((joined & _CASE) == _OPEN)
    if len(openers) <= limit:
        return []
    ends = np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)))
    per_message = np.bincount(np.searchsorted(ends, openers, side="right"), minlength=len(values))
    candidates = np.flatnonzero(per_message > limit).tolist()
    return [i for i in candidates if nesting_depth(values[i]) > limit]
