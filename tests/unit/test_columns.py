"""The batch decoder must give every message the verdict EventDecoder gives it alone.

``ColumnBuilder.decode`` decodes a whole batch with msgspec and checks timestamps,
fingerprints and raw prompts per column; a batch with a bad message takes the careful
path. Either way each message's fate (and each accepted event's columns) must be what
it would be on its own.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from models.batch import _ARRAY_FIELDS
from models.simhash import format_fp, simhash64
from streams.columns import ColumnBuilder, networks_of
from streams.records import MAX_MESSAGE_BYTES, EventDecoder, RequestEvent, is_hex_fingerprint


def event(i: int, **over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "event_id": f"e{i}", "ts": 1_700_000_000_000 + i, "account_id": f"acct-{i % 7}",
        "api_key_id": f"key-{i % 3}", "model": "atlas-large", "endpoint": "/v1/chat/completions",
        "status": 429 if i % 5 == 0 else 200, "prompt_tokens": 10 + i, "completion_tokens": 3 * i,
        "ip": f"10.{i % 4}.0.{i % 250}", "asn": 64_500 + i % 3, "user_agent": "sdk/1",
        "prompt_fp": f"{(i * 2_654_435_761) & (2**64 - 1):016x}",
    }
    if i % 4 == 0:
        doc["reasoning_tokens"] = i
    if i % 6 == 0:
        doc["flags"] = ["cot_request"]
    if i % 9 == 0:
        doc["logprobs"] = True
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def raw(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


def single(b: ColumnBuilder, value: bytes) -> dict[str, list[object]]:
    """Columns of one value decoded alone (the reference)."""
    batch = b.decode([value])
    assert batch.kept == [0], batch.rejected
    return columns_as_lists(batch.columns)


def columns_as_lists(cols: object) -> dict[str, list[object]]:
    out = {name: getattr(cols, name).tolist() for name in _ARRAY_FIELDS}
    out["account_ids"] = list(cols.account_ids)  # type: ignore[attr-defined]
    return out


BAD = {
    "not_json": b"{nope",
    "missing_field": raw({k: v for k, v in event(1).items() if k != "model"}),
    "wrong_type": raw(event(2, status="200")),
    "out_of_range": raw(event(3, status=700)),
    "negative_tokens": raw(event(4, completion_tokens=-1)),
    "bad_timestamp": raw(event(5, ts=17)),
    "oversized": raw(event(6, lang="x" * MAX_MESSAGE_BYTES)),
    "naive_datetime": raw(event(7, ts="2026-01-01T00:00:00")),
    "bad_hex": raw(event(8, prompt_fp="zzzzzzzzzzzzzzzz")),
}


def test_clean_batch_matches_each_event_decoded_alone() -> None:
    b = ColumnBuilder()
    values = [raw(event(i)) for i in range(40)]
    batch = b.decode(values)
    assert batch.kept == list(range(40)) and batch.rejected == []
    got = columns_as_lists(batch.columns)
    for i, v in enumerate(values):
        ref = single(b, v)
        assert {k: got[k][i] for k in got} == {k: ref[k][0] for k in ref}
    assert got["cot"][:7] == [True, False, False, False, False, False, True]
    assert got["reasoning_tokens"][:5] == [0, 0, 0, 0, 4]
    assert got["logprobs"][9] is True and got["logit_bias"][9] is False


@pytest.mark.parametrize("reason", sorted(BAD))
def test_one_bad_message_is_rejected_alone_with_the_decoders_reason(reason: str) -> None:
    b = ColumnBuilder()
    good = [raw(event(i)) for i in range(10, 20)]
    values = good[:4] + [BAD[reason]] + good[4:]
    batch = b.decode(values)
    assert batch.kept == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]
    [(at, rejection)] = batch.rejected
    assert at == 4
    alone = EventDecoder().decode(BAD[reason])
    assert not isinstance(alone, RequestEvent)
    assert rejection.code == alone.code
    ref = columns_as_lists(b.decode(good).columns)
    assert columns_as_lists(batch.columns) == ref


def test_none_value_and_empty_batch() -> None:
    b = ColumnBuilder()
    batch = b.decode([None, raw(event(1))])
    assert batch.kept == [1] and [r.code for _, r in batch.rejected] == ["not_json"]
    empty = b.decode([])
    assert len(empty) == 0 and len(empty.columns) == 0


def test_rfc3339_timestamps_and_raw_prompts_in_the_fast_path() -> None:
    b = ColumnBuilder()
    values = [raw(event(1, ts="2023-11-14T22:13:20Z")),
              raw(event(2, prompt_fp=None, prompt="Explain step by step: 2 + 2")),
              raw(event(3, prompt_fp=None))]
    batch = b.decode(values)
    assert batch.kept == [0, 1, 2]
    cols = batch.columns
    assert cols.ts.tolist()[0] == 1_700_000_000_000
    assert cols.has_fp.tolist() == [True, True, False]
    assert format_fp(int(cols.prompt_fp[1])) == format_fp(simhash64("Explain step by step: 2 + 2"))
    # the same fingerprint as the per-message decoder computes
    alone = EventDecoder().decode(values[1])
    assert isinstance(alone, RequestEvent) and alone.prompt_fp == format_fp(int(cols.prompt_fp[1]))


def test_random_mixtures_keep_every_verdict() -> None:
    rng = random.Random(5)
    b = ColumnBuilder()
    decoder = EventDecoder()
    for _ in range(20):
        values = [raw(event(i)) if rng.random() < 0.8 else rng.choice(list(BAD.values()))
                  for i in range(rng.randint(1, 60))]
        batch = b.decode(values)
        expect_kept = []
        for i, v in enumerate(values):
            r = decoder.decode(v)
            if isinstance(r, RequestEvent) and (r.prompt_fp is None or is_hex_fingerprint(r.prompt_fp)):
                expect_kept.append(i)
        assert batch.kept == expect_kept
        assert sorted(batch.kept + [i for i, _ in batch.rejected]) == list(range(len(values)))
        assert len(batch.columns) == len(expect_kept)


def test_dedup_keys_tell_event_ids_apart_and_repeat_for_repeats() -> None:
    b = ColumnBuilder()
    cols = b.decode([raw(event(1)), raw(event(2)), raw(event(1))]).columns
    k = cols.dedup_key.tolist()
    assert k[0] == k[2] != k[1]


def test_networks_group_ipv4_by_24_and_ipv6_by_48() -> None:
    nets = networks_of(("10.1.2.3", "10.1.2.200", "10.1.3.1", "2001:db8:abcd:1::1",
                        "2001:db8:abcd:ffff::2", None))
    assert nets == ["10.1.2", "10.1.2", "10.1.3", "2001:db8:abcd", "2001:db8:abcd", None]
    b = ColumnBuilder()
    cols = b.decode([raw(event(i, ip=ip)) for i, ip in enumerate(
        ["10.1.2.3", "10.1.2.200", "10.1.3.1"])]).columns
    h = cols.net_hash.tolist()
    assert h[0] == h[1] != h[2] and 0 not in h
    no_ip = b.decode([raw(event(1, ip=None))]).columns
    assert no_ip.net_hash.tolist() == [0]
    assert np.all(cols.key_hash != 0)
