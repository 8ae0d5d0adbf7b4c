"""``xwatch replay`` as a user runs it, without a broker: help, dry runs, clear errors."""

from __future__ import annotations

import doctest
import gzip
import importlib
import pkgutil
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

import streams.replay
from streams.cli import main
from streams.replay.cli import replay_command

T0 = 1_700_000_000_000


def event(i: int) -> bytes:
    return msgspec.json.encode({
        "event_id": f"e{i}", "ts": T0 + i * 1000, "account_id": f"a{i % 3}", "api_key_id": "k",
        "model": "m", "endpoint": "/v1/x", "status": 200, "prompt_tokens": 1, "completion_tokens": 2})


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    lines = [event(i) for i in range(30)]
    lines[4] = b"{broken"
    lines[9] = b'{"event_id": "x"}'
    path = tmp_path / "day.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["replay", *args], env={"XWATCH_BROKER": None,
                                                               "KAFKA_BOOTSTRAP_SERVERS": None})
    return result.exit_code, result.output


def test_registered_on_xwatch_and_help_explains_every_option() -> None:
    assert main.commands["replay"] is replay_command
    code, out = invoke("--help")
    assert code == 0
    for option in ("--broker", "--topic", "--speed", "--start", "--end", "--rewrite-time",
                   "--dry-run", "--backtest", "--app-id", "--csv-map", "--from-topic",
                   "--offset-lookup", "XWATCH_BROKER", "KAFKA_BOOTSTRAP_SERVERS"):
        assert option in out


def test_dry_run_validates_counts_and_lists_invalid_lines(recording: Path) -> None:
    code, out = invoke(str(recording), "--dry-run", "--start", "2023-11-14T22:13:22Z")
    assert code == 0, out
    assert f"invalid {recording}:5: not_json" in out
    assert f"invalid {recording}:10: missing_field" in out
    assert "validated 26 events (dry run: nothing produced)" in out
    assert "invalid input skipped: 2 (not_json 1, missing_field 1)" in out
    assert "outside --start/--end: 2" in out


def test_show_invalid_limits_the_list_not_the_count(recording: Path) -> None:
    code, out = invoke(str(recording), "--dry-run", "--show-invalid", "1")
    assert code == 0
    assert out.count("invalid day") + out.count(f"invalid {recording}") == 1
    assert "invalid input skipped: 2" in out and "the first 1 are listed above" in out


def test_csv_dry_run_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,time,acct,api_key_id,model,endpoint,status,prompt_tokens,completion_tokens\n"
                    "e1,1700000000000,a,k,m,/x,200,1,2\n"
                    "e2,2023-11-14T22:13:21Z,a,k,m,/x,200,1,-2\n")
    code, out = invoke(str(path), "--dry-run", "--csv-map", "event_id=id,ts=time,account_id=acct")
    assert code == 0, out
    assert "validated 1 events" in out and f"invalid {path}:3: negative_tokens" in out


@pytest.mark.parametrize(("args", "message"), [
    (["nope.jsonl"], "does not exist"),
    (["{rec}", "--speed", "fast"], "bad speed 'fast'"),
    (["{rec}", "--speed", "-2"], "bad speed '-2'"),
    (["{rec}", "--start", "yesterday"], "'yesterday' is not a time"),
    (["{rec}", "--start", "2024-01-01T00:00:00"], "has no UTC offset"),
    (["{rec}", "--start", "1700000005000", "--end", "1700000001000"], "window is empty"),
    (["{rec}", "--rewrite-time", "soon"], "'soon' is not a time"),
    (["{rec}", "--csv-map", "ts=time"], "--csv-map applies to CSV and Parquet files only"),
    (["{rec}", "--from-topic", "t"], "one of the two"),
    ([], "one of the two"),
    (["{rec}", "--format", "csv", "--dry-run"], "no column for required field"),
])
def test_clear_errors_without_tracebacks(recording: Path, args: list[str], message: str) -> None:
    code, out = invoke(*[a.replace("{rec}", str(recording)) for a in args])
    assert code != 0
    assert message in out and "Traceback" not in out


def test_unreachable_broker_is_a_clear_error(recording: Path) -> None:
    code, out = invoke(str(recording), "--broker", "127.0.0.1:1")
    assert code == 1
    assert "cannot reach a Kafka broker at 127.0.0.1:1" in out and "Traceback" not in out


def test_docstring_examples() -> None:
    """The replay modules' docstring examples (pytest only collects doctests under models/)."""
    failures = 0
    for info in pkgutil.iter_modules(streams.replay.__path__):
        module = importlib.import_module(f"streams.replay.{info.name}")
        failures += doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed
    assert failures == 0
