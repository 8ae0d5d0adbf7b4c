"""The replay validator must give EventDecoder's verdict on every input."""

from __future__ import annotations

import typing

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.records import MAX_MESSAGE_BYTES, EventDecoder, Rejection, RequestEvent
from streams.replay.validate import FAST_PATH_FIELD, FAST_PATH_PATTERN, EventValidator

BASE: dict[str, object] = {
    "event_id": "e1", "ts": 1_700_000_000_000, "account_id": "a", "api_key_id": "k", "model": "m",
    "endpoint": "/v1/chat/completions", "status": 200, "prompt_tokens": 1, "completion_tokens": 2}


def verdict(result: object) -> object:
    if type(result) is Rejection:
        return ("rejected", result.code, result.detail)   # type: ignore[attr-defined]
    return ("ok", result.ts, result.account_id, result.prompt_fp)  # type: ignore[attr-defined]


VALIDATOR, DECODER = EventValidator(), EventDecoder()


def agree(raw: bytes | None) -> None:
    expected = verdict(DECODER.decode(raw))
    assert verdict(VALIDATOR.check(raw)) == expected, raw
    # the batch path, alone and next to an ordinary event
    ok = msgspec.json.encode(BASE)
    for values in ([raw], [ok, raw]):
        events, rejected = VALIDATOR.check_batch(values)
        got = events[-1] if events[-1] is not None else dict(rejected)[len(values) - 1]
        assert verdict(got) == expected, raw
    assert verdict(events[0]) == verdict(DECODER.decode(ok))


def test_batch_with_an_oversized_line_is_checked_the_careful_way() -> None:
    big = msgspec.json.encode({**BASE, "user_agent": "u" * MAX_MESSAGE_BYTES})
    events, rejected = VALIDATOR.check_batch([msgspec.json.encode(BASE), big, b"{"])
    assert events[0].ts == BASE["ts"] and events[1:] == [None, None]
    assert [(i, r.code) for i, r in rejected] == [(1, "oversized"), (2, "not_json")]


def test_the_pattern_the_fast_path_replaces_is_the_only_one() -> None:
    """If records.py adds or changes a pattern, validate.py's cheap check must follow."""
    hints = typing.get_type_hints(RequestEvent, include_extras=True)
    patterns = {name: m.pattern for name, tp in hints.items() for m in _metas(tp) if m.pattern}
    assert patterns == {FAST_PATH_FIELD: FAST_PATH_PATTERN}


def _metas(tp: object) -> list[msgspec.Meta]:
    out = [a for a in getattr(tp, "__metadata__", ()) if isinstance(a, msgspec.Meta)]
    for arg in typing.get_args(tp):
        out += _metas(arg)
    return out


def test_known_edge_cases_agree() -> None:
    cases: list[dict[str, object]] = [
        {}, {"ts": "2023-11-14T22:13:20Z"}, {"ts": "2023-11-14T22:13:20"}, {"ts": 17},
        {"ts": 4_102_444_800_000}, {"ts": 946_684_800_000}, {"ts": 1.5e12}, {"ts": True},
        {"prompt": "hello"}, {"prompt": "hello", "prompt_fp": "00000000000000ff"},
        {"prompt_fp": "0123456789abcdef"}, {"prompt_fp": "0123456789ABCDEF"},
        {"prompt_fp": "0123456789abcde"}, {"prompt_fp": "0123456789abcdeg"},
        {"prompt_fp": "0123456789abcdef\n"}, {"prompt_fp": " 123456789abcdef"}, {"prompt_fp": None},
        {"prompt_fp": "０123456789abcdef"}, {"status": 99}, {"status": 600}, {"prompt_tokens": -1},
        {"latency_ms": -1}, {"account_id": "x" * 129}, {"flags": ["a", 1]}, {"asn": "1"},
        {"unknown": [1, 2, {"x": None}]}, {"user_agent": "u" * MAX_MESSAGE_BYTES},
    ]
    for extra in cases:
        agree(msgspec.json.encode({**BASE, **extra}))
    for field in BASE:
        agree(msgspec.json.encode({k: v for k, v in BASE.items() if k != field}))
    for raw in (None, b"", b"null", b"[]", b"{", b"garbage", b'{"event_id": 1}', b"\xff\xfe"):
        agree(raw)


values = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False),
                   st.text(max_size=40), st.text(alphabet="0123456789abcdefABCDEFxyz \n", max_size=18),
                   st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(RequestEvent.__struct_fields__), values, max_size=6),
       st.sets(st.sampled_from(list(BASE)), max_size=2))
def test_random_events_agree(extra: dict[str, object], dropped: set[str]) -> None:
    event = {k: v for k, v in {**BASE, **extra}.items() if k not in dropped}
    agree(msgspec.json.encode(event))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_agree(raw: bytes) -> None:
    agree(raw)
