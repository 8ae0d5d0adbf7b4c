"""100,000 fuzzed messages interleaved with valid traffic, through one real worker (issue 11).

The fuzz is generated deterministically (``random.Random(SEED)``) from the scenario's own
events, so most bad messages carry real account ids and keys and land in the same
partitions and batches as the valid events. Every bad message is built to be rejected with
one known DLQ code; the valid traffic includes a few thousand events that carry unknown
extra fields (which the contract says are ignored). Checked on one worker:

* it never stops: the process is alive at the end and ``/health`` answers;
* every bad message has exactly one DLQ entry, with a contract reason and the code it was
  built for, under the message's own key; no ``internal_error``; no raw prompt leaks;
* no valid event is dead-lettered, late or lost, unknown fields or not;
* detection is unchanged: the firing alerts equal those of offline detection over the
  valid traffic alone (:func:`streams.offline.detect_offline` runs the worker's own fold;
  ``test_detect_matches_worker.py`` checks that it gives the worker's alert ids on clean
  traffic), computed here on the scenario's values *without* the extra fields.
"""

from __future__ import annotations

import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pytest

from streams.alerts import decode_alert
from streams.offline import detect_offline
from streams.records import MAX_MESSAGE_BYTES, REASONS, EventDecoder, Rejection, RequestEvent
from streams.simulate import build_scenario, encode_events

if TYPE_CHECKING:
    from conftest import WorkerCluster

pytestmark = pytest.mark.integration

SEED = 11_006
N_BAD = 100_000
N_EXTRA = 3_000                       # valid events sent with unknown extra fields
SECRET = "fz-secret-prompt"           # raw prompt text put into some bad messages

Pairs = list[tuple[bytes, bytes]]     # an object as (encoded key, encoded value) pairs
Item = tuple[str | bytes | None, bytes | None, int | None]

_enc = msgspec.json.encode
REQUIRED = ("event_id", "ts", "account_id", "api_key_id", "model", "endpoint", "status",
            "prompt_tokens", "completion_tokens")
STRINGS = ("event_id", "account_id", "api_key_id", "model", "endpoint")
OPT_STRINGS = ("ip", "user_agent", "lang", "prompt_fp")
COUNTS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "latency_ms")
BOOLS = ("logprobs", "logit_bias")
BAD_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80", b"\xe2\x82",
            b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80")


def _nested(depth: int, leaf: bytes = b"1") -> bytes:
    """A JSON value ``depth`` levels deep, arrays and objects alternating."""
    text = leaf
    for i in range(depth):
        text = b'{"a":' + text + b"}" if i % 2 else b"[" + text + b"]"
    return text


def _obj(pairs: Pairs) -> bytes:
    return b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"


def _set(pairs: Pairs, name: str, value: bytes) -> Pairs:
    """``pairs`` with field ``name`` set to the encoded ``value`` (added when absent)."""
    key = _enc(name)
    out = [(k, value if k == key else v) for k, v in pairs]
    return out if any(k == key for k, _ in pairs) else [*out, (key, value)]


# -- the fuzz: each kind returns (value, the DLQ code it must get) ----------------------------

def _truncated(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    full = _obj(p)
    return full[:r.randrange(len(full))], "not_json"


def _bad_syntax(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    full = _obj(p)
    return r.choice([
        full.replace(b'":', b'"=', 1), full[:-1] + b",}", full.replace(b'"', b"'", 2),
        full.replace(b'"event_id"', b"event_id", 1), b"/* c */" + full, full + b"}", full + full,
        full.replace(b":", b":\x01", 1), full.replace(b'"fz-', b'"fz\n-', 1),
        b"\xef\xbb\xbf" + full, b"{,}", b"{", b"}", b'{"a"}', b'{"a":}', b"[1,]", b"tru",
        full.replace(b",", b";", 1), full.replace(b"{", b"{{", 1), b"{'ts': 1}",
    ]), "not_json"


def _random_bytes(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    return b"\xff" + r.randbytes(r.randrange(400)), "not_json"


def _wrong_type(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    name = r.choice(STRINGS + OPT_STRINGS + COUNTS + BOOLS + ("status", "asn", "flags"))
    if name in STRINGS or name in OPT_STRINGS:
        choices: list[Any] = [123, True, 1.5, [], {}, ["a"], {"a": "b"}, -0.0]
    elif name in BOOLS:
        choices = [1, 0, "true", [], {}, 0.0, "false"]
    elif name == "flags":
        choices = ["cot_request", [1], [None], {"a": 1}, 5, [["x"]], True]
    else:
        choices = ["12", True, False, 1.5, 1000.0, [], {}, [1], "NaN", {"v": 1}]
    if name in REQUIRED:
        choices.append(None)          # null where a value is required
    return _obj(_set(p, name, _enc(r.choice(choices)))), "wrong_type"


def _huge_number(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    name = r.choice(COUNTS + ("asn", "status"))
    big = [2**32, 2**32 + 7, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**40]
    if name == "status":
        value = r.choice([0, 99, 600, 1000, -200, *big])
        return _obj(_set(p, name, _enc(value))), "out_of_range"
    if r.random() < 0.7:
        value = r.choice(big)
        return _obj(_set(p, name, _enc(value))), "out_of_range"
    if r.random() < 0.2:               # a literal no integer type holds
        return _obj(_set(p, name, b"1" + b"0" * r.randrange(30, 400))), "out_of_range"
    value = r.choice([-1, -7, -(2**31), -(2**63)])
    return _obj(_set(p, name, _enc(value))), ("negative_tokens" if "tokens" in name
                                              else "out_of_range")


def _bad_timestamp(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    value = r.choice([17, -1, 0, 946_684_799_999, 4_102_444_800_000, 2**63, 2**64 + 1, 10**40,
                      1.7e12, "2026-01-01T00:00:00", "2026-01-01", "yesterday", "", None, True,
                      [], {"ms": 1}, "1767225600000", "9999-12-31T23:59:59Z",
                      "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
    return _obj(_set(p, "ts", _enc(value))), "bad_timestamp"


def _invalid_utf8(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    junk = r.choice(BAD_UTF8)
    where = r.randrange(5)
    if where == 0:                     # inside a known string field
        name = r.choice(STRINGS[1:] + ("user_agent",))
        return _obj(_set(p, name, b'"x' + junk + b'y"')), "not_json"
    if where == 1:                     # an unknown field's value (msgspec skips it)
        return _obj([*p, (b'"x_note"', b'"a' + junk + b'b"')]), "not_json"
    if where == 2:                     # an unknown field's key
        return _obj([(b'"x' + junk + b'"', b"1"), *p]), "not_json"
    if where == 3:                     # after the object
        return _obj(p) + junk, "not_json"
    return junk + _obj(p), "not_json"


def _too_deep(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    depth = r.choice([64, 65, 100, 1000, 3000])
    where = r.randrange(4)
    if where == 0:
        return b"[" * (depth + 1), "too_deep"             # not JSON: every opener counts
    name = ["x_unknown", "ip", "flags"][where - 1]
    return _obj(_set(p, name, _nested(depth))), "too_deep"


def _nan_inf(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    name = r.choice(COUNTS + ("ts", "status", "asn", "x_score"))
    return _obj(_set(p, name, r.choice([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"]))), \
        "not_json"


def _duplicate_key(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    name, value, code = r.choice([("status", b'"x"', "wrong_type"),
                                  ("status", b"700", "out_of_range"),
                                  ("prompt_tokens", b"-1", "negative_tokens"),
                                  ("account_id", b"5", "wrong_type"),
                                  ("event_id", _enc("e" * 200), "out_of_range"),
                                  ("ts", b"17", "bad_timestamp"),
                                  ("model", b"null", "wrong_type")])
    bad = (_enc(name), value)
    # the bad copy first or last; msgspec keeps the last copy of a key and checks the type
    # and bounds of each copy as it reads it, but ts's range only on the copy it kept
    first = r.random() < 0.5 and name != "ts"
    return _obj([bad, *p] if first else [*p, bad]), code


def _missing(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    if r.random() < 0.05:
        return r.choice([b"{}", b'{"event_id":"x"}', b'{"x_only_unknown":1}']), "missing_field"
    gone = _enc(r.choice(REQUIRED))
    return _obj([(k, v) for k, v in p if k != gone]), "missing_field"


def _empty(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    return r.choice([None, b"", b" ", b"\n\t", b"\x00"]), "not_json"


def _non_object(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    full = _obj(p)
    return r.choice([b"[]", b"[" + full + b"]", b"1", b'"text"', b"null", b"true", b"false",
                     b"1.5", b"-0", b'""', b"[1,2,3]", _enc(full.decode())]), "wrong_type"


def _huge_string(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    if r.random() < 0.15:
        name = "prompt_fp"
        value = r.choice(["0" * 15, "0" * 17, "zzzzzzzzzzzzzzzz", " 123456789abcdef", "é" * 16])
    else:
        name = r.choice(STRINGS)
        limit = 256 if name == "endpoint" else 128
        value = "s" * (limit + 1 + r.choice([0, 1, 50, 1000, 5000]))
    return _obj(_set(p, name, _enc(value))), "out_of_range"


def _oversized(r: random.Random, p: Pairs) -> tuple[bytes | None, str]:
    name = r.choice(["x_blob", "user_agent", "lang"])
    q = _set(p, name, b'""')
    pad = MAX_MESSAGE_BYTES - len(_obj(q)) + r.choice([1, 2, 100, 5000, 30_000])
    return _obj(_set(q, name, _enc("b" * pad))), "oversized"


# kind, weight (per mille); oversized ones are big on the wire, so they are few
KINDS: list[tuple[Callable[[random.Random, Pairs], tuple[bytes | None, str]], int]] = [
    (_truncated, 120), (_bad_syntax, 80), (_random_bytes, 50), (_wrong_type, 120),
    (_huge_number, 90), (_bad_timestamp, 70), (_invalid_utf8, 90), (_too_deep, 40),
    (_nan_inf, 60), (_duplicate_key, 70), (_missing, 60), (_empty, 50), (_non_object, 40),
    (_huge_string, 58), (_oversized, 2),
]


def fuzz(r: random.Random, templates: list[dict[str, Any]], n: int) -> list[tuple[Item, str]]:
    """``n`` bad messages: ((key, value, None), expected code)."""
    kinds = r.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS], k=n)
    out: list[tuple[Item, str]] = []
    for i, kind in enumerate(kinds):
        t = r.choice(templates)
        p = [(_enc(k), _enc(v)) for k, v in t.items()]
        p = _set(p, "event_id", _enc(f"fz-{i}"))
        if i % 17 == 0:
            p.append((b'"prompt"', _enc(f"{SECRET} {i}")))
        value, code = kind(r, p)
        u = r.random()
        key: str | bytes | None = (None if u < 0.3 else b"" if u < 0.35
                                   else r.randbytes(8) if u < 0.45 else t["account_id"])
        out.append(((key, value, None), code))
    return out


def _extra_fields(r: random.Random) -> list[tuple[bytes, bytes]]:
    """Unknown fields a future gateway might send: all valid JSON, none too deep or too big."""
    menu = [
        (b'"x_trace_id"', _enc(f"{r.getrandbits(64):016x}")),
        (b'"gateway"', b'{"region":"eu-west-1","pop":[1,2,{"a":null}],"tags":{}}'),
        (b'"x_deep"', _nested(r.randrange(1, 64))),        # up to the 64-level bound
        (b'"x_big_int"', b"1" + b"0" * r.randrange(20, 400)),
        (b'"x_float"', r.choice([b"1e400", b"-0.0e-5", b"3.14159", b"-1E+2"])),
        (b'"x_unicode"', _enc("café 😀 ñ 中文 \u2028")),
        (b'""', b'"empty key"'),
        (b'"Status"', b'"not the status field"'),
        (b'"x_null"', b"null"), (b'"x_bool"', b"true"),
        (b'"x_brackets"', _enc("{[" * 300)),
        (b'"x_blob"', _enc("a" * r.randrange(1000, 20_000))),
        (b'"x_dup"', b"1"), (b'"x_dup"', b'"twice"'),
        (b'"x_escapes"', b'"\\u00e9\\n\\t\\"\\\\ \\ud83d\\ude00"'),
    ]
    return r.sample(menu, r.randrange(1, 5))


def _with_extras(r: random.Random, value: bytes) -> bytes:
    extra = b",".join(k + b":" + v for k, v in _extra_fields(r))
    return b"{" + extra + b"," + value[1:] if r.random() < 0.5 else value[:-1] + b"," + extra + b"}"


def build_stream(seed: int) -> dict[str, Any]:
    s = build_scenario("demo", seed=3, duration_s=900, accounts=30, total_rate=6.0)
    valid = [(k, v) for k, _, v in encode_events(s)]
    r = random.Random(seed)
    templates = [msgspec.json.decode(v) for _, v in r.sample(valid, 500)]
    for t in templates:
        t.pop("prompt", None)
    bad = fuzz(r, templates, N_BAD)
    extra_at = set(r.sample(range(len(valid)), N_EXTRA))
    sent_valid = [(k, _with_extras(r, v) if i in extra_at else v) for i, (k, v) in enumerate(valid)]
    is_valid = np.random.default_rng(seed).permutation(len(valid) + N_BAD) < len(valid)
    items: list[Item] = []
    vi, bi = iter(sent_valid), iter(bad)
    for flag in is_valid.tolist():
        if flag:
            k, v = next(vi)
            items.append((k, v, None))
        else:
            items.append(next(bi)[0])
    return {"scenario": s, "valid": [v for _, v in valid], "sent_valid": [v for _, v in sent_valid],
            "bad": bad, "items": items}


def test_the_fuzz_is_what_it_claims_to_be() -> None:
    """Offline: each bad message gets its code from the worker's decoder; each valid one,
    extras and all, is accepted. Also that generation is fast and deterministic."""
    t0 = time.monotonic()
    stream = build_stream(SEED)
    took = time.monotonic() - t0
    assert took < 10, f"generating the fuzz took {took:.1f} s"
    assert build_stream(SEED)["items"][:2000] == stream["items"][:2000]
    decoder = EventDecoder()
    wrong = []
    for (_, value, _), code in stream["bad"]:
        got = decoder.decode(value)
        if not isinstance(got, Rejection) or got.code != code:
            wrong.append((code, got, (value or b"")[:120]))
    assert not wrong, f"{len(wrong)} bad messages not rejected as built, e.g. {wrong[:5]}"
    assert all(isinstance(decoder.decode(v), RequestEvent) for v in stream["sent_valid"])
    changed = [a != b for a, b in zip(stream["valid"], stream["sent_valid"], strict=True)]
    assert sum(changed) == N_EXTRA


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        return int(resp.status)


def test_fuzz_interleaved_with_traffic_goes_to_the_dlq_and_detection_is_unchanged(
        cluster: WorkerCluster) -> None:
    stream = build_stream(SEED)
    items: list[Item] = stream["items"]
    bad: list[tuple[Item, str]] = stream["bad"]
    n_valid = len(stream["valid"])
    offline = detect_offline(stream["valid"], partitions=cluster.settings.partitions)
    want = {(a.alert_id, a.rule, a.status) for a in offline if a.status == "firing"}
    assert want, "nothing fires on the clean traffic: nothing to compare"

    proc, port = cluster.start_worker()
    for i in range(0, len(items), 25_000):     # flushed per chunk: under the producer's queue limit
        cluster.produce(items[i:i + 25_000])
    # xwatch_messages_in_total can run ahead of the messages read (it also counts a
    # partition-EOF marker when one consume call holds two for the same partition), so being
    # done is judged by the DLQ and event counters too
    m = cluster.wait_counted(port, len(items), timeout_s=240)
    expected_codes = Counter(code for _, code in bad)
    deadline = time.monotonic() + 120
    while (sum(v for k, v in m.items() if k.startswith("xwatch_dlq_total")) < N_BAD
           or m["xwatch_events_counted_total"] < n_valid) and time.monotonic() < deadline:
        time.sleep(0.5)
        m = cluster.metrics(port)

    # detection: the alerts that fire are those of the valid traffic alone
    got: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        alerts = [decode_alert(v) for _, v in cluster.read_topic(cluster.settings.topics.alerts,
                                                                   1.0) if v]
        got = {(a.alert_id, a.rule, a.status) for a in alerts if a.status == "firing"}
        if got >= want:
            break
        time.sleep(1)

    dlq: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 60
    while len(dlq) < N_BAD and time.monotonic() < deadline:
        dlq = cluster.read_topic(cluster.settings.topics.dlq)
    m = cluster.metrics(port)

    # the worker never stopped
    assert proc.poll() is None, "the worker died"
    assert _health(port) == 200
    assert m['xwatch_internal_errors_total{input="requests"}'] == 0
    # every bad message is in the DLQ once, with the reason it was built for, under its key
    assert len(dlq) == N_BAD
    entries = [msgspec.json.decode(v) for _, v in dlq if v is not None]
    assert len(entries) == N_BAD
    reasons = [e["reason"] for e in entries]
    assert all(isinstance(x, str) and x and x.split(":", 1)[0] in REASONS for x in reasons)
    assert Counter(x.split(":", 1)[0] for x in reasons) == expected_codes
    assert {k.removeprefix("xwatch_dlq_total{reason=\"").removesuffix("\"}"): int(v)
            for k, v in m.items() if k.startswith("xwatch_dlq_total") and v} == expected_codes
    assert {e["topic"] for e in entries} == {cluster.settings.topics.requests}

    def norm(key: str | bytes | None) -> bytes:    # an empty key may come back as null
        return key.encode() if isinstance(key, str) else key or b""

    assert Counter(norm(k) for k, _ in dlq) == Counter(norm(k) for (k, _, _), _ in bad)
    assert not any(SECRET.encode() in v for _, v in dlq if v), "a raw prompt reached the DLQ"
    # no valid event was dead-lettered, dropped or held back, unknown fields or not
    assert not any(b"demo-3-" in v for _, v in dlq if v)
    assert m["xwatch_messages_in_total"] >= len(items)
    assert m["xwatch_events_counted_total"] == n_valid
    assert m["xwatch_late_events_total"] == 0 and m["xwatch_duplicate_events_total"] == 0
    assert got == want, f"missing {want - got}, extra {got - want}"
