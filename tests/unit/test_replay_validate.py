"""The replay validator must accept exactly what the worker accepts: what EventDecoder
accepts, with a ``prompt_fp`` (if any) of 16 hex digits - whichever of the two checks the
hex digits (the decoder did with a pattern; the worker's batch step does now)."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.records import MAX_MESSAGE_BYTES, EventDecoder, Rejection, RequestEvent
from streams.replay.validate import EventValidator, is_fingerprint

BASE: dict[str, object] = {
    "event_id": "e1", "ts": 1_700_000_000_000, "account_id": "a", "api_key_id": "k", "model": "m",
    "endpoint": "/v1/chat/completions", "status": 200, "prompt_tokens": 1, "completion_tokens": 2}
VALIDATOR, DECODER = EventValidator(), EventDecoder()


def worker_verdict(raw: bytes | None) -> object:
    ev = DECODER.decode(raw)
    if type(ev) is Rejection:
        return ("rejected", ev.code)
    if ev.prompt_fp is not None and not (len(ev.prompt_fp) == 16 and all(
            c in "0123456789abcdefABCDEF" for c in ev.prompt_fp)):
        return ("rejected", "out_of_range")
    return ("ok", ev.ts, ev.account_id, ev.prompt_fp)


def verdict(result: object) -> object:
    if type(result) is Rejection:
        return ("rejected", result.code)   # type: ignore[attr-defined]
    return ("ok", result.ts, result.account_id, result.prompt_fp)  # type: ignore[attr-defined]


def agree(raw: bytes | None) -> None:
    expected = worker_verdict(raw)
    assert verdict(VALIDATOR.check(raw)) == expected, raw
    # the batch path, alone and next to an ordinary event
    ok = msgspec.json.encode(BASE)
    for values in ([raw], [ok, raw]):
        events, rejected = VALIDATOR.check_batch(values)
        got = events[-1] if events[-1] is not None else dict(rejected)[len(values) - 1]
        assert verdict(got) == expected, raw
    assert verdict(events[0]) == worker_verdict(ok)


def test_batch_with_an_oversized_line_is_checked_the_careful_way() -> None:
    big = msgspec.json.encode({**BASE, "user_agent": "u" * MAX_MESSAGE_BYTES})
    events, rejected = VALIDATOR.check_batch([msgspec.json.encode(BASE), big, b"{"])
    assert events[0].ts == BASE["ts"] and events[1:] == [None, None]
    assert [(i, r.code) for i, r in rejected] == [(1, "oversized"), (2, "not_json")]


def test_fingerprint_rule() -> None:
    assert is_fingerprint("0123456789abcdef") and is_fingerprint("0123456789ABCDEF")
    for bad in ("0123456789abcde", "0123456789abcdefa", "0123456789abcdeg", " 123456789abcdef",
                "0123456789abcde\n", "０123456789abcde"):
        assert not is_fingerprint(bad), bad
    raw = msgspec.json.encode({**BASE, "prompt_fp": "0123456789abcdeg"})
    rejection = VALIDATOR.check(raw)
    assert rejection.code == "out_of_range" and "prompt_fp" in rejection.reason


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
