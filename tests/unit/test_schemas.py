"""Keep the JSON Schemas under ``schemas/`` honest against the code.

The schemas are documentation for people outside the project; the msgspec structs are what
the worker actually enforces. These tests check that the two say the same thing: the same
field names, the same required fields, the same bounds, and that every example in a schema
both validates against that schema and decodes with the struct.

No jsonschema dependency: a small validator below covers exactly the keywords the schemas
use, and a test fails if a schema starts using one it does not know.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from streams.alerts import ALERT_SCHEMA, Alert, decode_alert, encode_alert
from streams.labels import CampaignLabel, ScenarioLabels, read_labels
from streams.records import (
    REASONS,
    AccountRecord,
    DeadLetter,
    EventDecoder,
    Rejection,
    RequestEvent,
    dead_letter,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
DOCS_CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

FILES: dict[str, type[msgspec.Struct]] = {
    "request-event.v1.schema.json": RequestEvent,
    "account-record.v1.schema.json": AccountRecord,
    "alert.v1.schema.json": Alert,
    "dlq-entry.v1.schema.json": DeadLetter,
    "labels.v1.schema.json": ScenarioLabels,
}

# Fields that have a default in the struct but that the project's encoders always write
# (msgspec encodes defaults unless ``omit_defaults``), so consumers may rely on them.
ALWAYS_WRITTEN = {"alert.v1.schema.json": {"schema"}}

DLQ_CODES = {
    "not_json",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "negative_tokens",
    "oversized",
    "too_deep",
    "bad_timestamp",
    "late",
    "internal_error",
}


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


# --- a validator for the subset of JSON Schema 2020-12 the files use ------------------------

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "examples", "default"}
ASSERTIONS = {
    "type",
    "required",
    "properties",
    "items",
    "maxLength",
    "minLength",
    "minimum",
    "maximum",
    "pattern",
    "enum",
    "const",
    "oneOf",
    "minItems",
    "$ref",
    "format",
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(
    instance: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> list[str]:
    """Error messages for ``instance`` against ``schema`` (empty when it is valid)."""
    errors: list[str] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        errors += validate(instance, root["$defs"][ref.removeprefix("#/$defs/")], root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](instance) for t in types):
            return errors + [f"{path}: {instance!r} is not of type {types}"]
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} != {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} not in {schema['enum']}")
    if "oneOf" in schema:
        matches = sum(not validate(instance, sub, root, path) for sub in schema["oneOf"])
        if matches != 1:
            errors.append(f"{path}: {instance!r} matches {matches} of oneOf, not exactly 1")
    if isinstance(instance, str):
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if "minLength" in schema and len(instance) < schema["minLength"]:
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{path}: {instance!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not _RFC3339.match(instance):
            errors.append(f"{path}: {instance!r} is not an RFC 3339 date-time")
    if _TYPES["number"](instance):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{path}: {instance} < {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{path}: {instance} > {schema['maximum']}")
    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        for i, item in enumerate(instance):
            if "items" in schema:
                errors += validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(instance, dict):
        errors += [f"{path}: missing {k}" for k in schema.get("required", []) if k not in instance]
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                errors += validate(instance[key], sub, root, f"{path}.{key}")
    return errors


def _subschemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out = [schema]
    for sub in schema.get("properties", {}).values():
        out += _subschemas(sub)
    for sub in schema.get("$defs", {}).values():
        out += _subschemas(sub)
    for sub in schema.get("oneOf", []):
        out += _subschemas(sub)
    if isinstance(schema.get("items"), dict):
        out += _subschemas(schema["items"])
    return out


# --- the files themselves ---------------------------------------------------------------------


def test_schema_dir_holds_exactly_the_expected_files() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(FILES)
    assert (SCHEMA_DIR / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(FILES))
def test_schema_is_draft_2020_12_with_examples(name: str) -> None:
    schema = load(name)
    assert schema["$schema"] == DRAFT
    assert schema["$id"].startswith("urn:extraction-watch:schema:")
    assert schema["$id"].endswith(":v1") and ".v1." in name
    assert schema["type"] == "object"
    assert schema["title"] and schema["description"]
    assert isinstance(schema["examples"], list) and schema["examples"]


@pytest.mark.parametrize("name", sorted(FILES))
def test_schema_uses_only_keywords_the_test_validator_checks(name: str) -> None:
    for sub in _subschemas(load(name)):
        unknown = set(sub) - ANNOTATIONS - ASSERTIONS
        assert not unknown, f"{name}: keyword(s) {unknown} are not checked by this test"
        if "format" in sub:
            assert sub["format"] == "date-time"


# --- schema <-> struct ------------------------------------------------------------------------


def _struct_fields(struct: type[msgspec.Struct]) -> tuple[set[str], set[str]]:
    fields = msgspec.structs.fields(struct)
    return {f.encode_name for f in fields}, {f.encode_name for f in fields if f.required}


CASES = [(name, struct, load(name)) for name, struct in FILES.items()]
CASES.append(
    (
        "labels.v1.schema.json#campaign",
        CampaignLabel,
        load("labels.v1.schema.json")["$defs"]["campaign"],
    )
)


@pytest.mark.parametrize(("name", "struct", "schema"), CASES, ids=[c[0] for c in CASES])
def test_property_names_and_required_match_struct(
    name: str, struct: type[msgspec.Struct], schema: dict[str, Any]
) -> None:
    names, required = _struct_fields(struct)
    assert set(schema["properties"]) == names
    assert len(schema["required"]) == len(set(schema["required"]))
    assert set(schema["required"]) == required | ALWAYS_WRITTEN.get(name, set())


def test_always_written_fields_really_are_written() -> None:
    example = load("alert.v1.schema.json")["examples"][0]
    minimal = {k: v for k, v in example.items() if k != "schema"}
    encoded = json.loads(encode_alert(msgspec.convert(minimal, Alert)))
    assert (
        encoded["schema"]
        == ALERT_SCHEMA
        == load("alert.v1.schema.json")["properties"]["schema"]["const"]
    )


_CONSTRAINTS = ("maxLength", "minLength", "minimum", "maximum", "pattern", "minItems")


def _shape(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{json type: constraints}`` for a property schema, from either side."""
    branches = prop.get("anyOf") or prop.get("oneOf") or [prop]
    out: dict[str, dict[str, Any]] = {}
    for b in branches:
        if "$ref" in b:
            b = defs[b["$ref"].rsplit("/", 1)[-1]]
        if "const" in b:
            out["string" if isinstance(b["const"], str) else type(b["const"]).__name__] = {}
            continue
        if "enum" in b:
            out["enum"] = {"enum": frozenset(b["enum"])}
            continue
        types = b["type"] if isinstance(b["type"], list) else [b["type"]]
        for t in types:
            c = {k: b[k] for k in _CONSTRAINTS if k in b} if t != "null" else {}
            if t == "array" and "items" in b:
                c["items"] = _shape(b["items"], defs)
            if t == "object" and "properties" in b:
                c["properties"] = frozenset(b["properties"])
            out[t] = c
    return out


@pytest.mark.parametrize(("name", "struct", "schema"), CASES, ids=[c[0] for c in CASES])
def test_types_and_bounds_match_struct(
    name: str, struct: type[msgspec.Struct], schema: dict[str, Any]
) -> None:
    generated = msgspec.json.schema(struct)
    gdefs = generated["$defs"]
    gstruct = gdefs[struct.__name__]
    ours_defs = load(name.split("#")[0]).get("$defs", {})
    for field, gprop in gstruct["properties"].items():
        theirs = _shape(gprop, gdefs)
        ours = _shape(schema["properties"][field], ours_defs)
        assert set(ours) == set(theirs), f"{name}.{field}: types {set(ours)} != {set(theirs)}"
        for t, constraints in theirs.items():
            for key, value in constraints.items():
                # The schema may say more than the struct (e.g. ts bounds), never less.
                assert ours[t].get(key) == value, f"{name}.{field} ({t}): {key} differs"


# --- examples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_examples_validate_against_their_schema(name: str) -> None:
    schema = load(name)
    for i, example in enumerate(schema["examples"]):
        assert validate(example, schema, schema) == [], f"{name} example {i}"


def test_request_examples_decode_and_prompt_is_dropped() -> None:
    decoder = EventDecoder()
    examples = load("request-event.v1.schema.json")["examples"]
    assert any("prompt" in e for e in examples), "keep an example with a raw prompt"
    assert any(isinstance(e["ts"], str) for e in examples), "keep an RFC 3339 ts example"
    for example in examples:
        event = decoder.decode(json.dumps(example).encode())
        assert isinstance(event, RequestEvent), getattr(event, "reason", event)
        assert event.account_id == example["account_id"]
        assert isinstance(event.ts, int)
        assert event.prompt is None
        if "prompt" in example:
            assert event.prompt_fp is not None and len(event.prompt_fp) == 16


def test_rfc3339_example_ts_converts_to_epoch_ms() -> None:
    decoder = EventDecoder()
    by_id = {e["event_id"]: e for e in load("request-event.v1.schema.json")["examples"]}
    event = decoder.decode(json.dumps(by_id["req-7f3a9c21"]).encode())
    assert isinstance(event, RequestEvent)
    assert event.ts == 1731400000250  # 2024-11-12T08:26:40.250Z


def test_account_examples_decode() -> None:
    for example in load("account-record.v1.schema.json")["examples"]:
        record = msgspec.json.decode(json.dumps(example).encode(), type=AccountRecord)
        assert record.account_id == example["account_id"]


def test_alert_examples_round_trip() -> None:
    examples = load("alert.v1.schema.json")["examples"]
    assert {e["status"] for e in examples} == {"firing", "resolved"}
    for example in examples:
        alert = decode_alert(json.dumps(example).encode())
        assert json.loads(encode_alert(alert)) == example


def test_dlq_examples_decode_and_name_a_known_code() -> None:
    for example in load("dlq-entry.v1.schema.json")["examples"]:
        entry = msgspec.json.decode(json.dumps(example).encode(), type=DeadLetter)
        assert entry.reason.split(":", 1)[0] in DLQ_CODES


def test_labels_example_reads(tmp_path: Path) -> None:
    for i, example in enumerate(load("labels.v1.schema.json")["examples"]):
        path = tmp_path / f"labels{i}.json"
        path.write_text(json.dumps(example), encoding="utf-8")
        labels = read_labels(path)
        assert labels.scenario == example["scenario"]
        assert len(labels.campaigns) == len(example["campaigns"])


# --- the schema and the decoder accept and reject the same messages -----------------------------


def _base_event() -> dict[str, Any]:
    return dict(load("request-event.v1.schema.json")["examples"][0])


_DROP = object()  # a value for _mutate: remove the field


def _mutate(**changes: Any) -> dict[str, Any]:
    event = _base_event()
    for key, value in changes.items():
        if value is _DROP:
            event.pop(key)
        else:
            event[key] = value
    return event


REJECTED = [
    ("event_id_too_long", _mutate(event_id="e" * 129), "out_of_range"),
    ("endpoint_too_long", _mutate(endpoint="/" * 257), "out_of_range"),
    ("status_below_100", _mutate(status=99), "out_of_range"),
    ("status_above_599", _mutate(status=600), "out_of_range"),
    ("status_as_string", _mutate(status="200"), "wrong_type"),
    ("negative_prompt_tokens", _mutate(prompt_tokens=-1), "negative_tokens"),
    ("negative_completion_tokens", _mutate(completion_tokens=-5), "negative_tokens"),
    ("negative_latency", _mutate(latency_ms=-1), "out_of_range"),
    ("short_prompt_fp", _mutate(prompt_fp="abc123"), "out_of_range"),
    ("non_hex_prompt_fp", _mutate(prompt_fp="zzzzzzzzzzzzzzzz"), "out_of_range"),
    ("missing_account_id", _mutate(account_id=_DROP), "missing_field"),
    ("missing_ts", _mutate(ts=_DROP), "missing_field"),
    ("ts_in_seconds", _mutate(ts=1731400000), "bad_timestamp"),
    ("ts_without_offset", _mutate(ts="2024-11-12T08:26:40"), "bad_timestamp"),
    ("ts_not_a_date", _mutate(ts="yesterday"), "bad_timestamp"),
    ("flags_not_a_list", _mutate(flags="cot_request"), "wrong_type"),
    # every integer that reaches a numpy column is bounded (issue 14: these crashed the worker)
    ("prompt_tokens_2_63", _mutate(prompt_tokens=2**63), "out_of_range"),
    ("completion_tokens_2_64_plus_1", _mutate(completion_tokens=2**64 + 1), "out_of_range"),
    ("reasoning_tokens_2_63", _mutate(reasoning_tokens=2**63), "out_of_range"),
    ("prompt_tokens_2_32", _mutate(prompt_tokens=2**32), "out_of_range"),
    ("latency_2_32", _mutate(latency_ms=2**32), "out_of_range"),
    ("asn_2_64", _mutate(asn=2**64), "out_of_range"),
    ("asn_2_32", _mutate(asn=2**32), "out_of_range"),
    ("negative_asn", _mutate(asn=-1), "out_of_range"),
]

ACCEPTED = [
    ("event_id_at_limit", _mutate(event_id="e" * 128)),
    ("endpoint_at_limit", _mutate(endpoint="/" * 256)),
    ("status_100", _mutate(status=100)),
    ("status_599", _mutate(status=599)),
    ("zero_tokens", _mutate(prompt_tokens=0, completion_tokens=0, reasoning_tokens=0)),
    ("counts_at_limit", _mutate(prompt_tokens=2**32 - 1, completion_tokens=2**32 - 1,
                                reasoning_tokens=2**32 - 1, latency_ms=2**32 - 1, asn=2**32 - 1)),
    ("upper_case_fp", _mutate(prompt_fp="9C1E44A0B7D2F013")),
    ("nulls_for_optionals", _mutate(ip=None, asn=None, flags=None, prompt_fp=None)),
    (
        "no_optionals",
        {
            k: v
            for k, v in _base_event().items()
            if k in load("request-event.v1.schema.json")["required"]
        },
    ),
    ("unknown_field_ignored", _mutate(gateway_region="eu-west")),
    ("ts_with_offset", _mutate(ts="2024-11-12T09:26:40+01:00")),
]


@pytest.mark.parametrize(
    ("doc", "code"), [(d, c) for _, d, c in REJECTED], ids=[n for n, _, _ in REJECTED]
)
def test_schema_and_decoder_both_reject(doc: dict[str, Any], code: str) -> None:
    schema = load("request-event.v1.schema.json")
    assert validate(doc, schema, schema), "the schema accepts what the worker rejects"
    result = EventDecoder().decode(json.dumps(doc).encode())
    assert isinstance(result, Rejection), "the worker accepts what the schema rejects"
    assert result.code == code, result.reason


@pytest.mark.parametrize("doc", [d for _, d in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_schema_and_decoder_both_accept(doc: dict[str, Any]) -> None:
    schema = load("request-event.v1.schema.json")
    assert validate(doc, schema, schema) == []
    result = EventDecoder().decode(json.dumps(doc).encode())
    assert isinstance(result, RequestEvent), getattr(result, "reason", result)


# --- dead letters -------------------------------------------------------------------------------


def test_dlq_reason_pattern_lists_exactly_the_codes() -> None:
    pattern = load("dlq-entry.v1.schema.json")["properties"]["reason"]["pattern"]
    listed = set(re.fullmatch(r"\^\(([a-z_|]+)\)\(: \.\*\)\?\$", pattern).group(1).split("|"))  # type: ignore[union-attr]
    assert listed == DLQ_CODES == set(REASONS)
    assert {code for _, _, code in REJECTED} <= listed
    for code in DLQ_CODES:
        assert re.search(pattern, Rejection(code, "some detail").reason)
        assert re.search(pattern, Rejection(code, "").reason)
    assert not re.search(pattern, "bogus: detail")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b"",
        json.dumps(_mutate(status=42)).encode(),
        json.dumps(_mutate(completion_tokens=-1, prompt="secret prompt text")).encode(),
        json.dumps(_mutate(event_id="x" * 90_000)).encode(),
        b"\xff\xfe{broken utf-8 " * 600,
    ],
    ids=["not_json", "empty", "out_of_range", "with_prompt", "oversized", "bad_utf8"],
)
def test_real_dead_letters_match_the_dlq_schema(raw: bytes) -> None:
    schema = load("dlq-entry.v1.schema.json")
    rejection = EventDecoder().decode(raw)
    assert isinstance(rejection, Rejection)
    value = dead_letter(rejection, "api.requests", 3, 12345, raw)
    doc = json.loads(value)
    assert validate(doc, schema, schema) == []
    assert msgspec.json.decode(value, type=DeadLetter).offset == 12345
    assert "secret prompt text" not in doc["raw"]


# --- the user documentation -----------------------------------------------------------------------


def test_contract_doc_names_every_dlq_code_and_schema() -> None:
    text = DOCS_CONTRACT.read_text(encoding="utf-8")
    for code in DLQ_CODES:
        assert f"`{code}`" in text, code
    for name in FILES:
        assert name in text, name
