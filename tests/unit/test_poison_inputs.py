"""No input message can stop detection (issue 14).

Hypothesis builds request events with any field replaced by any JSON value (deep nesting,
huge and negative integers, floats where integers belong, NaN/Infinity, unicode,
duplicate keys, unknown fields), plus arbitrary bytes. Each batch goes through the
worker's per-batch path — decode, columns, monitor step, window close — which must never
raise, and every rejected message must carry one of the contract's reasons.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.monitor import MonitorConfig, PartitionMonitor
from streams.account_registry import AccountRegistry
from streams.columns import ColumnBuilder
from streams.nesting import MAX_NESTING, nesting_depth, too_deep, too_deep_in_batch
from streams.records import REASONS, AccountRecordDecoder, EventDecoder, Rejection, RequestEvent
from streams.replay.validate import EventValidator

T0 = 1_767_225_600_000
VALID: dict[str, Any] = {
    "event_id": "e-1", "ts": T0, "account_id": "acct-1", "api_key_id": "k1",
    "model": "atlas-large", "endpoint": "/v1/chat/completions", "status": 200,
    "prompt_tokens": 120, "completion_tokens": 900, "reasoning_tokens": 300,
    "latency_ms": 800, "ip": "203.0.113.7", "asn": 64500, "user_agent": "python-httpx/0.27",
    "prompt_fp": "9c1e44a0b7d2f013", "lang": "en", "flags": ["cot_request"],
    "logprobs": False, "logit_bias": False,
}
FIELDS = sorted(VALID)


def _nested(depth: int, leaf: str = "1") -> str:
    """A JSON value ``depth`` levels deep, objects and arrays alternating."""
    text = leaf
    for i in range(depth):
        text = f'{{"a":{text}}}' if i % 2 else f"[{text}]"
    return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


big_ints = st.one_of(
    st.integers(),
    st.sampled_from([2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1,
                     -(2**63) - 1, -(2**64), 10**40, -1]),
)
scalars = st.one_of(
    st.none(), st.booleans(), big_ints,
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "\u0000", "\ud7ff\ue000", "😀" * 10, "2024-11-12T08:26:40Z", "NaN"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """One message value: a mutated event as JSON text, or arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    fields = dict(VALID, event_id=f"e-{draw(st.integers(0, 10**6))}")
    parts: list[str] = []
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            fields.pop(name, None)                                    # missing
        elif kind == 1:
            parts.append(f"{_dumps(name)}:{_nested(draw(st.integers(1, 3000)))}")   # deep
        else:
            fields[name] = draw(json_values)
    body = [f"{_dumps(k)}:{_dumps(v)}" for k, v in fields.items()]
    if draw(st.booleans()):                                           # duplicate keys
        k = draw(st.sampled_from(FIELDS))
        body.append(f"{_dumps(k)}:{_dumps(draw(json_values))}")
    if draw(st.booleans()):                                           # unknown fields
        depth = draw(st.sampled_from([0, 5, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 5000]))
        body.append(f'"x_extra":{_nested(depth)}')
    body += parts
    text = "{" + ",".join(draw(st.permutations(body))) + "}"
    return text.encode("utf-8", errors="surrogatepass")


def _assert_reason(r: Rejection) -> None:
    assert r.code in REASONS, r
    assert r.reason.split(":", 1)[0] in REASONS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=12), st.integers(0, 5))
def test_the_whole_batch_path_never_raises(values: list[bytes], valid_copies: int) -> None:
    good = [msgspec.json.encode(dict(VALID, event_id=f"good-{i}", ts=T0 + 1000 * i))
            for i in range(valid_copies)]
    batch = values + good
    decoded = ColumnBuilder().decode(batch)
    for _, r in decoded.rejected:
        _assert_reason(r)
    assert sorted(decoded.kept + [i for i, _ in decoded.rejected]) == list(range(len(batch)))
    for i in range(len(values), len(batch)):
        assert i in decoded.kept, "a valid event was lost because of its neighbours"
    mon = PartitionMonitor(MonitorConfig(window_ms=60_000, allowed_lateness_ms=5_000))
    result = mon.step(decoded.columns, np.arange(len(decoded), dtype=np.int64))
    assert result.counted + result.duplicates + len(result.late) == len(decoded)
    mon.flush()                                   # window close and every detector run too


@settings(max_examples=300, deadline=None)
@given(messages())
def test_one_message_gets_the_same_verdict_alone_and_in_a_batch(raw: bytes) -> None:
    """The careful path (one message) and the fast path (a batch) agree."""
    alone = EventDecoder(check_fingerprint_hex=False).decode(raw)
    ok = msgspec.json.encode(VALID)
    batch = ColumnBuilder().decode([ok, raw])
    if isinstance(alone, RequestEvent):
        assert batch.kept == [0, 1]
    else:
        assert batch.kept == [0]
        [(i, rejection)] = batch.rejected
        assert i == 1 and rejection.code == alone.code


@pytest.mark.parametrize(("field", "value"), [
    ("prompt_tokens", 2**63), ("completion_tokens", 2**64 + 1), ("reasoning_tokens", 2**63),
    ("asn", 2**64), ("latency_ms", 2**70), ("asn", -1),
])
def test_integers_beyond_a_column_are_out_of_range(field: str, value: int) -> None:
    raw = msgspec.json.encode(dict(VALID, **{field: value}))
    decoded = ColumnBuilder().decode([raw])
    [(_, r)] = decoded.rejected
    assert r.code == "out_of_range" and field in r.detail


@pytest.mark.parametrize(("where", "depth"), [("ip", 1200), ("flags", 1200), ("x_unknown", 5000),
                                              ("x_unknown", MAX_NESTING + 1)])
def test_nesting_beyond_the_bound_is_too_deep(where: str, depth: int) -> None:
    text = msgspec.json.encode(VALID)[:-1] + f',"{where}":{_nested(depth)}}}'.encode()
    for decoded in (ColumnBuilder().decode([text]), ColumnBuilder().decode([text, text])):
        assert decoded.kept == [] and {r.code for _, r in decoded.rejected} == {"too_deep"}


def test_nesting_up_to_the_bound_is_accepted_in_unknown_fields() -> None:
    text = msgspec.json.encode(VALID)[:-1] + f',"x":{_nested(MAX_NESTING - 1)}}}'.encode()
    assert nesting_depth(text) == MAX_NESTING
    assert ColumnBuilder().decode([text]).kept == [0]


def test_brackets_inside_strings_do_not_count() -> None:
    text = msgspec.json.encode(dict(VALID, lang="{[" * 400))
    assert not too_deep(text) and too_deep_in_batch([text, text]) == []
    assert ColumnBuilder().decode([text]).kept == [0]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_depth_of_any_bytes_is_defined_and_batch_agrees(raw: bytes) -> None:
    assert nesting_depth(raw) >= 0
    assert too_deep_in_batch([raw, raw], limit=3) == ([0, 1] if nesting_depth(raw) > 3 else [])


def test_a_raw_prompt_in_a_deep_message_never_reaches_the_dead_letter() -> None:
    from streams.records import dead_letter
    raw = msgspec.json.encode(dict(VALID, prompt="the secret prompt"))[:-1] + \
        f',"x":{_nested(3000)}}}'.encode()
    r = EventDecoder().decode(raw)
    assert isinstance(r, Rejection) and r.code == "too_deep"
    assert b"the secret prompt" not in dead_letter(r, "api.requests", 0, 1, raw)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["account_id", "created_ts", "tier", "payment_fp",
                                        "country", "verified", "x"]), json_values, max_size=6),
       st.integers(0, 3000))
def test_account_records_never_stop_the_registry_or_the_monitor(doc: dict[str, Any],
                                                                depth: int) -> None:
    doc.setdefault("account_id", "acct-1")
    raw = _dumps(doc).encode("utf-8", errors="surrogatepass")
    if depth > 2000:
        raw = raw[:-1] + f',"deep":{_nested(depth)}}}'.encode() if raw.endswith(b"}") else raw
    registry = AccountRegistry("unused:0", "api.accounts")
    registry.apply(b"acct-1", raw)                       # never raises
    verdict = AccountRecordDecoder().decode(raw)
    if isinstance(verdict, Rejection):
        _assert_reason(verdict)
        assert sum(registry.rejected.values()) == 1
    # whatever was accepted, the monitor can use it as the account's profile
    mon = PartitionMonitor(MonitorConfig(), profiles=registry.get)
    mon.step(ColumnBuilder().decode([msgspec.json.encode(VALID)]).columns)
    mon.flush()


def test_floats_nan_and_infinity_where_integers_belong() -> None:
    for value in (1.5, math.inf, -math.inf, math.nan, 1e400):
        text = _dumps(dict(VALID, prompt_tokens=value)).replace("Infinity", "1e999")
        decoded = ColumnBuilder().decode([text.encode()])
        [(_, r)] = decoded.rejected
        assert r.code in {"wrong_type", "not_json", "out_of_range"}, (value, r)


@pytest.mark.parametrize("junk", [b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf",
                                  b"\xf8\x88\x80\x80\x80"],
                         ids=["ff_fe", "cut_sequence", "utf8_surrogate", "overlong", "five_bytes"])
@pytest.mark.parametrize("where", ["unknown_value", "unknown_key", "known_value"])
def test_invalid_utf8_anywhere_is_not_json(junk: bytes, where: str) -> None:
    """JSON text is UTF-8 (RFC 8259): msgspec used to skip an unknown field's bytes unchecked,
    so such a message was counted as a valid event instead of dead-lettered."""
    body = msgspec.json.encode(VALID)[:-1]
    raw = {"unknown_value": body + b',"x_extra":"a' + junk + b'b"}',
           "unknown_key": body + b',"x' + junk + b'":1}',
           "known_value": body.replace(b'"k1"', b'"k' + junk + b'1"') + b"}"}[where]
    alone = EventDecoder().decode(raw)
    assert isinstance(alone, Rejection) and alone.code == "not_json", alone
    ok = msgspec.json.encode(VALID)
    for batch, bad_at in (([raw], 0), ([ok, raw, ok], 1)):
        decoded = ColumnBuilder().decode(batch)
        assert [(i, r.code) for i, r in decoded.rejected] == [(bad_at, "not_json")]
        assert len(decoded.kept) == len(batch) - 1
    record = b'{"account_id":"acct-1","x":"' + junk + b'"}'
    assert AccountRecordDecoder().decode(record).code == "not_json"  # type: ignore[union-attr]
    replay = EventValidator()                 # the replay tool's check agrees
    assert replay.check(raw).code == "not_json"
    assert [(i, r.code) for i, r in replay.check_batch([ok, raw])[1]] == [(1, "not_json")]


def test_valid_non_ascii_utf8_in_unknown_fields_is_accepted() -> None:
    raw = msgspec.json.encode(dict(VALID, x_note="café 😀 \u2028", **{"ключ": ["ü"]}))
    assert isinstance(EventDecoder().decode(raw), RequestEvent)
    assert ColumnBuilder().decode([raw, raw]).kept == [0, 1]


@pytest.mark.parametrize("raw", [
    msgspec.json.encode(dict(VALID, status=200))[:-1].replace(b'"status":200', b'"status":2'),
    msgspec.json.encode(dict(VALID, event_id=5))[:60],
    b'[1,]', b'[{"event_id":"e"}', b'"unterminated', b'{"prompt_tokens":-1,"x":NaN}',
], ids=["cut_inside_status", "cut_after_wrong_type", "array_trailing_comma", "array_cut",
        "string_cut", "bad_value_then_nan"])
def test_a_message_that_is_not_json_is_not_json_whatever_comes_before_the_break(raw: bytes) -> None:
    """msgspec checks each value as it reads it: a message cut short after a bad value used
    to be dead-lettered for that value (``out_of_range``, ``wrong_type``) and not as
    ``not_json``, on both paths."""
    assert EventDecoder().decode(raw).code == "not_json"  # type: ignore[union-attr]
    decoded = ColumnBuilder().decode([msgspec.json.encode(VALID), raw])
    assert [(i, r.code) for i, r in decoded.rejected] == [(1, "not_json")]
    record = AccountRecordDecoder().decode(b'{"account_id":5,' + raw)
    assert isinstance(record, Rejection) and record.code == "not_json"


def test_valid_json_with_numbers_no_type_holds_keeps_the_field_s_reason() -> None:
    raw = msgspec.json.encode(dict(VALID, status=700))[:-1] + b',"x":1e400,"y":' + b"9" * 400 + b"}"
    assert EventDecoder().decode(raw).code == "out_of_range"  # type: ignore[union-attr]


@pytest.mark.parametrize("wrap", [
    lambda e: msgspec.json.encode(e).decode(), lambda e: [msgspec.json.encode(e).decode()],
    lambda e: {"event": msgspec.json.encode(e).decode()}, lambda e: {"event": e},
    lambda e: dict(e, x_inner={"prompt": e["prompt"]}),
], ids=["encoded_twice", "encoded_twice_in_array", "encoded_twice_in_object", "in_object",
        "nested_prompt_key"])
def test_a_raw_prompt_anywhere_in_a_message_stays_out_of_the_dead_letter(wrap: Any) -> None:
    """A gateway that encodes the event twice sends a JSON string: the ``prompt`` key in it
    reads ``\\"prompt\\"`` and slipped past the redaction into the DLQ entry; a ``prompt``
    below the top level was kept as well (only the top-level field was removed)."""
    from streams.records import dead_letter
    raw = msgspec.json.encode(wrap(dict(VALID, prompt="the secret prompt", status=7)))
    r = EventDecoder().decode(raw)
    assert isinstance(r, Rejection)
    assert b"the secret prompt" not in dead_letter(r, "api.requests", 0, 1, raw)


def test_a_dead_letter_without_a_prompt_keeps_its_raw_text() -> None:
    from streams.records import dead_letter
    raw = msgspec.json.encode(dict(VALID, status=7, prompt_fp="0" * 16))
    def entry(value: bytes) -> Any:
        rejection = EventDecoder().decode(value)
        assert isinstance(rejection, Rejection)
        return msgspec.json.decode(dead_letter(rejection, "t", 0, 1, value))

    doc = entry(raw)
    assert doc["raw"] == raw.decode()
    with_prompt = msgspec.json.encode(dict(VALID, status=7, prompt="secret"))
    doc = entry(with_prompt)
    assert doc["raw"] == msgspec.json.encode(dict(VALID, status=7)).decode()
