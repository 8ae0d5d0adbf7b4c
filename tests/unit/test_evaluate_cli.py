"""``xwatch evaluate`` on temporary files, and the topic reader against a fake consumer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.alerts import Alert, encode_alert
from streams.cli import main
from streams.evaluate import (
    AlertSourceError,
    evaluate_command,
    load_alerts,
    read_alert_topic,
    score_alerts,
)
from streams.labels import CampaignLabel, ScenarioLabels, write_labels

MIN = 60_000
T0 = 1_700_000_000_000
HOUR = 60 * MIN


def labels() -> ScenarioLabels:
    return ScenarioLabels(
        scenario="unit",
        seed=7,
        start_ts=T0,
        end_ts=T0 + 10 * HOUR,
        events=1234,
        benign_accounts=[f"b{i:02d}" for i in range(99)] + ["c1"],
        campaigns=[
            CampaignLabel(name="solo", kind="solo_extraction", accounts=["s1"],
                          start_ts=T0 + HOUR, end_ts=T0 + 2 * HOUR),
            CampaignLabel(name="hydra", kind="hydra_cluster", accounts=["h1", "h2", "h3", "h4"],
                          start_ts=T0 + 3 * HOUR, end_ts=T0 + 4 * HOUR),
            CampaignLabel(name="evals", kind="eval_harness", accounts=["c1"],
                          start_ts=T0, end_ts=T0 + 10 * HOUR, confounder=True),
        ],
    )


def alert(alert_id: str, accounts: list[str], end: int, *, rule: str = "volume_spike",
          status: str = "firing") -> Alert:
    return Alert(
        alert_id=alert_id, status=status, rule=rule, severity="warning",  # type: ignore[arg-type]
        account_ids=accounts, score=9.0, threshold=5.0, window_start_ts=end - MIN,
        window_end_ts=end, detected_at=end + 1000, summary="test", evidence={},
    )


GOOD = [
    alert("a1", ["s1"], T0 + HOUR + MIN),
    alert("a1", ["s1"], T0 + HOUR + 5 * MIN, status="resolved"),
    alert("a2", ["h1", "h2", "h3", "h4"], T0 + 3 * HOUR + 90_000, rule="coordinated_accounts"),
]
BAD = [
    alert("a1", ["s1"], T0 + HOUR + 4 * MIN),
    alert("a2", ["h1", "h2"], T0 + 3 * HOUR + 2 * MIN, rule="coordinated_accounts"),
    alert("f1", ["c1"], T0 + 5 * HOUR, rule="population_outlier"),
    alert("f2", ["b03"], T0 + 6 * HOUR, rule="population_outlier"),
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    write_labels(labels(), tmp_path / "labels.json")
    out = {"labels": tmp_path / "labels.json"}
    for name, alerts in [("good", GOOD), ("bad", BAD)]:
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(encode_alert(a) + b"\n" for a in alerts))
        out[name] = path
    return out


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["evaluate", *args], env={"XWATCH_BROKER": None, "COLUMNS": "120"})


def test_all_goals_met(files: dict[str, Path]) -> None:
    result = run(str(files["labels"]), str(files["good"]), "--fail-on-goals")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "solo" in out and "hydra" in out and "evals" in out
    assert "4/4" in out and "1:00" in out and "1:30" in out  # hydra named, times to detect
    assert "alerts: 2 (true 2, false 0); precision 1.00" in out
    assert "false alerts per 1,000 benign account-hours: 0.00" in out
    assert "confounder alerts: 0" in out
    assert "all goals met" in out


def test_goals_missed_are_printed_and_fail_on_goals_exits_1(files: dict[str, Path]) -> None:
    result = run(str(files["labels"]), str(files["bad"]))
    assert result.exit_code == 0, result.output  # reported, not failed, without the flag
    out = result.output
    assert "alerts: 4 (true 2, false 2); precision 0.50" in out
    assert "2/4" in out
    assert "confounder alerts: 1" in out
    assert "goals missed (5)" in out
    assert "hydra (hydra_cluster): named 2/4 accounts (50%)" in out
    assert "median time to detect 3:00, goal <= 2:00" in out
    assert "2.00 false alerts per 1,000 benign account-hours" in out
    assert run(str(files["labels"]), str(files["bad"]), "--fail-on-goals").exit_code == 1


def test_json(files: dict[str, Path]) -> None:
    result = run(str(files["labels"]), str(files["bad"]), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["alerts"], data["true_alerts"], data["false_alerts"]) == (4, 2, 2)
    assert data["precision"] == 0.5
    assert data["confounder_alerts"] == 1
    assert data["benign_account_hours"] == 1000.0
    assert data["false_alerts_per_1k_account_hours"] == 2.0
    assert data["false_alerts_by_rule"] == {"population_outlier": 2}
    rows = {c["name"]: c for c in data["campaigns"]}
    assert rows["solo"]["time_to_detect_ms"] == 4 * MIN
    assert (rows["hydra"]["accounts_named"], rows["hydra"]["accounts_total"]) == (2, 4)
    assert rows["evals"]["confounder"] and rows["evals"]["caught"]
    assert len(data["failed_goals"]) == 5
    assert data["skipped"] == 0
    failing = run(str(files["labels"]), str(files["bad"]), "--json", "--fail-on-goals")
    assert failing.exit_code == 1
    assert json.loads(failing.output)["failed_goals"] == data["failed_goals"]


def test_undecodable_lines_are_skipped_and_counted(files: dict[str, Path]) -> None:
    with files["good"].open("ab") as f:
        f.write(b"not json\n\n{\"alert_id\": \"x\"}\n")
    loaded = load_alerts(files["good"])
    assert (len(loaded.alerts), loaded.skipped) == (3, 2)
    result = run(str(files["labels"]), str(files["good"]))
    assert result.exit_code == 0, result.output
    assert "skipped 2" in result.output
    with pytest.raises(ValueError, match="2 line"):
        score_alerts(files["labels"], files["good"])


def test_bad_inputs_exit_with_a_message(files: dict[str, Path], tmp_path: Path) -> None:
    missing = run(str(files["labels"]), str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 1 and "cannot read alerts" in missing.output
    (tmp_path / "junk.json").write_text("{}")
    junk = run(str(tmp_path / "junk.json"), str(files["good"]))
    assert junk.exit_code == 1 and "cannot read labels" in junk.output
    assert run(str(tmp_path / "absent.json"), str(files["good"])).exit_code == 2
    bad_url = run(str(files["labels"]), "kafka://no-topic-here")
    assert bad_url.exit_code == 1 and "kafka://HOST:PORT/TOPIC" in bad_url.output


def test_stdin(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        evaluate_command, [str(files["labels"]), "-", "--json"],
        input=files["good"].read_bytes(),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["alerts"] == 2


def test_score_alerts_helper(files: dict[str, Path]) -> None:
    by_path = score_alerts(files["labels"], files["bad"])
    by_value = score_alerts(labels(), BAD)
    assert by_path == by_value
    assert by_value.precision == 0.5
    assert score_alerts(labels(), GOOD).meets_goals() == []


def test_help() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for word in ("LABELS", "ALERTS", "--broker", "--json", "--fail-on-goals", "kafka://"):
        assert word in result.output


# --- the topic reader, against a fake consumer ------------------------------------------------


class FakeError:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code


class FakeMessage:
    def __init__(self, partition: int, offset: int, value: bytes | None,
                 error: FakeError | None = None) -> None:
        self._p, self._o, self._v, self._e = partition, offset, value, error

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def error(self) -> FakeError | None:
        return self._e


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """Partitions of messages; ``reported`` high watermarks may be short of the real ends."""

    def __init__(self, logs: dict[int, list[bytes | None]], clock: FakeClock,
                 reported: dict[int, int] | None = None, topic: str = "abuse.alerts") -> None:
        self.logs, self.clock, self.topic = logs, clock, topic
        self.reported = reported or {p: len(v) for p, v in logs.items()}
        self.low: dict[int, int] = {}
        self.queue: list[FakeMessage] = []
        self.polls = 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        class Meta:
            error = None
            partitions = {p: object() for p in self.logs}

        class Md:
            topics = {self.topic: Meta()} if topic == self.topic else {}

        return Md()

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return self.low.get(tp.partition, 0), self.reported[tp.partition]

    def assign(self, tps: list[Any]) -> None:
        for tp in tps:
            for offset, value in enumerate(self.logs[tp.partition]):
                self.queue.append(FakeMessage(tp.partition, offset, value))

    def poll(self, timeout: float) -> FakeMessage | None:
        self.polls += 1
        if self.queue:
            return self.queue.pop(0)
        self.clock.now += timeout
        return None


def encoded(n: int, prefix: str) -> list[bytes | None]:
    return [encode_alert(alert(f"{prefix}{i}", ["s1"], T0 + i)) for i in range(n)]


def test_topic_reader_reads_every_partition_to_its_end() -> None:
    clock = FakeClock()
    consumer = FakeConsumer({0: encoded(3, "p0-"), 1: [], 2: [*encoded(2, "p2-"), b"junk", None]},
                            clock)
    loaded = read_alert_topic("b:1", "abuse.alerts", consumer=consumer, clock=clock)
    assert sorted(a.alert_id for a in loaded.alerts) == ["p0-0", "p0-1", "p0-2", "p2-0", "p2-1"]
    assert loaded.skipped == 2
    assert clock.now < 2.0  # ended one quiet second after the watermarks, not on idle (5 s)


def test_topic_reader_reads_past_a_short_watermark() -> None:
    clock = FakeClock()
    consumer = FakeConsumer({0: encoded(5, "x")}, clock, reported={0: 2})
    loaded = read_alert_topic("b:1", "abuse.alerts", consumer=consumer, clock=clock)
    assert len(loaded.alerts) == 5
    assert clock.now < 2.0


def test_topic_reader_stops_on_idle_when_the_watermark_is_never_reached() -> None:
    clock = FakeClock()
    consumer = FakeConsumer({0: encoded(2, "x")}, clock, reported={0: 10})
    loaded = read_alert_topic("b:1", "abuse.alerts", consumer=consumer, clock=clock,
                              idle_timeout_s=5.0)
    assert len(loaded.alerts) == 2
    assert 5.0 <= clock.now < 6.0


def test_topic_reader_partition_emptied_by_retention() -> None:
    clock = FakeClock()
    consumer = FakeConsumer({0: [], 1: encoded(1, "x")}, clock, reported={0: 7, 1: 1})
    consumer.low = {0: 7}  # offsets 0..6 deleted: nothing to read, nothing to wait for
    loaded = read_alert_topic("b:1", "abuse.alerts", consumer=consumer, clock=clock)
    assert len(loaded.alerts) == 1
    assert clock.now < 2.0


def test_topic_reader_missing_topic() -> None:
    consumer = FakeConsumer({0: []}, FakeClock())
    with pytest.raises(AlertSourceError, match="nope"):
        read_alert_topic("b:1", "nope", consumer=consumer)
