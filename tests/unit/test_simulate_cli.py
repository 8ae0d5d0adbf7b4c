"""``xwatch simulate`` on temporary files: events, labels and account records."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import msgspec
from click.testing import CliRunner

from streams.cli import main
from streams.labels import read_labels
from streams.records import AccountRecord, EventDecoder, RequestEvent
from streams.simulate import SCENARIOS, accounts_path_for, build_scenario
from streams.simulate_cli import produce_account_records, run_simulate


def read_events(path: Path) -> list[RequestEvent]:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    d = EventDecoder()
    out = []
    for line in raw.splitlines():
        ev = d.decode(line)
        assert isinstance(ev, RequestEvent), ev
        out.append(ev)
    return out


def read_records(path: Path) -> list[AccountRecord]:
    dec = msgspec.json.Decoder(AccountRecord)
    return [dec.decode(line) for line in path.read_bytes().splitlines()]


def test_simulate_writes_events_labels_and_accounts(tmp_path: Path) -> None:
    out = tmp_path / "day.jsonl"
    result = CliRunner().invoke(main, ["simulate", "--scenario", "full", "--duration", "900",
                                       "--accounts", "30", "--rate", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    labels = read_labels(tmp_path / "day.labels.json")
    events = read_events(out)
    records = read_records(tmp_path / "day.accounts.jsonl")
    assert labels.scenario == "full" and labels.end_ts - labels.start_ts == 900_000
    assert len(events) == labels.events > 0
    assert len(labels.attacks) == 7 and len(labels.confounders) == 3
    seen = {e.account_id for e in events}
    for c in labels.campaigns:
        assert set(c.accounts) <= seen
    ids = {r.account_id for r in records}
    assert seen <= ids
    assert set(labels.benign_accounts) <= ids
    assert all(r.created_ts and r.payment_fp and r.tier for r in records)
    assert "account records" in result.output


def test_simulate_uses_the_scenario_duration_unless_given(tmp_path: Path) -> None:
    out = tmp_path / "kr.jsonl.gz"
    result = CliRunner().invoke(main, ["simulate", "--scenario", "key_rotation", "--accounts", "8",
                                       "--rate", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    labels = read_labels(tmp_path / "kr.labels.json")
    assert labels.end_ts - labels.start_ts == SCENARIOS["key_rotation"].duration_s * 1000
    assert (tmp_path / "kr.accounts.jsonl").exists()
    assert len(read_events(out)) == labels.events


def test_simulate_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    args = ["simulate", "--scenario", "hydra_cluster", "--duration", "600", "--accounts", "10",
            "--rate", "2", "--seed", "3"]
    for name in ("a", "b"):
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / f"{name}.jsonl")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.accounts.jsonl").read_bytes() == (tmp_path / "b.accounts.jsonl").read_bytes()


def test_simulate_list_names_every_scenario() -> None:
    result = CliRunner().invoke(main, ["simulate", "--list"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert listed == set(SCENARIOS)


def test_run_simulate_outside_click_takes_none_for_scenario_defaults(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    rc = run_simulate("logit_probe", False, 1, 300, 5, 1.0, None, str(out), None, None,
                      "api.requests", "max")
    assert rc == 0
    assert read_labels(tmp_path / "p.labels.json").end_ts - read_labels(
        tmp_path / "p.labels.json").start_ts == 300_000
    s = build_scenario("logit_probe", seed=1, duration_s=None, accounts=5, total_rate=1.0)
    assert s.labels.end_ts - s.labels.start_ts == SCENARIOS["logit_probe"].duration_s * 1000


def test_accounts_path_sits_next_to_the_events() -> None:
    assert accounts_path_for("/x/day.jsonl.gz") == Path("/x/day.accounts.jsonl")
    assert accounts_path_for("run.jsonl") == Path("run.accounts.jsonl")


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any]] = []
        self.flushed = False

    def produce(self, topic: str, key: Any = None, value: Any = None, **_: Any) -> None:
        self.sent.append((topic, key, value))

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        self.flushed = True
        return 0


def test_produce_account_records_keys_by_account() -> None:
    s = build_scenario("hydra_cluster", seed=2, duration_s=300, accounts=5, total_rate=1.0)
    p = FakeProducer()
    n = produce_account_records(s, p, "api.accounts")  # type: ignore[arg-type]
    assert n == len(s.account_records) == len(p.sent) and p.flushed
    dec = msgspec.json.Decoder(AccountRecord)
    for topic, key, value in p.sent:
        assert topic == "api.accounts"
        assert dec.decode(value).account_id == key
