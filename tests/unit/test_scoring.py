"""Scoring rules of ``models.scoring`` on hand-built scenarios with known outcomes."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

import models.scoring
from models.scoring import AlertRecord, Campaign, Goals, Scorecard, score

MIN = 60_000
HOUR = 60 * MIN
BENIGN = tuple(f"b{i:03d}" for i in range(100))


def fire(alert_id: str, accounts: tuple[str, ...], end: int, rule: str = "volume_spike",
         status: str = "firing", severity: str = "warning") -> AlertRecord:
    return AlertRecord(alert_id, status, rule, accounts, end - MIN, end, severity)


def card_for(alerts: list[AlertRecord], campaigns: list[Campaign] | None = None,
             benign: tuple[str, ...] = BENIGN, hours: int = 10) -> Scorecard:
    if campaigns is None:
        campaigns = [Campaign("solo", "solo_extraction", ("s1",), 60 * MIN, 120 * MIN)]
    return score(campaigns, benign, 0, hours * HOUR, alerts)


def row(card: Scorecard, name: str) -> models.scoring.CampaignScore:
    (found,) = [c for c in card.campaigns if c.name == name]
    return found


def test_caught_and_time_to_detect() -> None:
    card = card_for([fire("a", ("s1",), 63 * MIN), fire("b", ("s1",), 70 * MIN, rule="drift")])
    solo = row(card, "solo")
    assert solo.caught
    assert solo.time_to_detect_ms == 3 * MIN  # first window_end minus campaign start
    assert solo.rules == ("drift", "volume_spike")
    assert (solo.accounts_named, solo.accounts_total) == (1, 1)
    assert card.meets_goals() == ["median time to detect 3:00, goal <= 2:00"]


def test_not_caught() -> None:
    card = card_for([fire("a", ("b001",), 63 * MIN)])
    solo = row(card, "solo")
    assert not solo.caught
    assert solo.time_to_detect_ms is None
    assert solo.rules == ()
    assert "solo (solo_extraction): not caught" in card.meets_goals()
    assert card.median_time_to_detect_ms == math.inf


def test_alert_before_campaign_start_does_not_detect_it_and_is_false() -> None:
    card = card_for([fire("early", ("s1",), 59 * MIN)])
    assert not row(card, "solo").caught
    assert (card.alerts, card.true_alerts, card.false_alerts) == (1, 0, 1)
    # a window ending exactly at the start counts
    card = card_for([fire("edge", ("s1",), 60 * MIN)])
    assert row(card, "solo").time_to_detect_ms == 0
    assert card.true_alerts == 1


def test_partial_hydra_naming() -> None:
    hydra = Campaign("hydra", "hydra_cluster", tuple(f"h{i}" for i in range(10)), 0, HOUR)
    alerts = [
        fire("c1", tuple(f"h{i}" for i in range(6)), 2 * MIN, rule="coordinated_accounts"),
        fire("c2", ("h5", "h6", "h7", "h8"), 4 * MIN, rule="coordinated_accounts"),
    ]
    card = card_for(alerts, [hydra])
    h = row(card, "hydra")
    assert (h.accounts_named, h.accounts_total) == (9, 10)
    assert h.named_fraction == pytest.approx(0.9)
    assert not any("hydra" in g for g in card.meets_goals())
    card = card_for(alerts[:1], [hydra])
    assert row(card, "hydra").accounts_named == 6
    assert any(g.startswith("hydra (hydra_cluster): named 6/10") for g in card.meets_goals())


def test_precision_and_false_alert_rate() -> None:
    alerts = [fire(f"t{i}", ("s1",), (61 + i) * MIN) for i in range(9)]
    alerts.append(fire("f0", ("b001", "b002"), 200 * MIN, rule="population_outlier"))
    card = card_for(alerts)  # 100 benign accounts x 10 h = 1,000 account-hours
    assert (card.alerts, card.true_alerts, card.false_alerts) == (10, 9, 1)
    assert card.precision == pytest.approx(0.9)
    assert card.benign_account_hours == pytest.approx(1000.0)
    assert card.false_alerts_per_1k_account_hours == pytest.approx(1.0)
    assert card.false_alerts_by_rule == (("population_outlier", 1),)
    failed = card.meets_goals()
    assert "alert precision 0.90, goal >= 0.95" in failed
    assert not any("precision" in g for g in card.meets_goals(Goals(precision=0.9)))
    assert any("1.00 false alerts per 1,000 benign account-hours" in g for g in failed)
    # half the rate over twice the time
    assert card_for(alerts, hours=20).false_alerts_per_1k_account_hours == pytest.approx(0.5)


def test_no_alerts_has_precision_one_and_zero_rate() -> None:
    card = card_for([])
    assert card.alerts == 0
    assert card.precision == 1.0
    assert card.false_alerts_per_1k_account_hours == 0.0


def test_resolved_is_not_a_separate_alert() -> None:
    alerts = [
        fire("a", ("s1",), 62 * MIN),
        fire("a", ("s1",), 70 * MIN, status="resolved"),
        fire("a", ("s1",), 62 * MIN),  # a replayed duplicate
        fire("only-resolved", ("b001",), 80 * MIN, status="resolved"),
    ]
    card = card_for(alerts)
    assert (card.alerts, card.true_alerts, card.false_alerts) == (1, 1, 0)
    assert row(card, "solo").time_to_detect_ms == 2 * MIN


def test_confounder_alert_is_counted_and_false() -> None:
    campaigns = [
        Campaign("solo", "solo_extraction", ("s1",), 60 * MIN, 120 * MIN),
        Campaign("evals", "eval_harness", ("c1", "c2"), 0, 10 * HOUR, confounder=True),
    ]
    card = card_for([fire("x", ("c2",), 30 * MIN)], campaigns, benign=(*BENIGN[:98], "c1", "c2"))
    assert card.confounder_alerts == 1
    assert (card.true_alerts, card.false_alerts) == (0, 1)
    evals = row(card, "evals")
    assert evals.confounder and evals.caught and evals.accounts_named == 1
    assert [c.name for c in card.attacks] == ["solo"]
    assert [c.name for c in card.confounders] == ["evals"]
    assert card.confounder_pages == 1         # a warning: it wakes a person
    assert "1 page(s) (warning/critical) on confounders, goal <= 0" in card.meets_goals()
    # at info a person may look; it is still a false alert, but no page
    info = card_for([fire("x", ("c2",), 30 * MIN, severity="info")], campaigns,
                    benign=(*BENIGN[:98], "c1", "c2"))
    assert (info.confounder_alerts, info.confounder_pages, info.false_alerts) == (1, 0, 1)
    assert not any("confounders" in g for g in info.meets_goals())


def test_confounder_accounts_count_as_benign_attack_accounts_do_not() -> None:
    campaigns = [
        Campaign("solo", "solo_extraction", ("s1", "b000"), 0, HOUR),
        Campaign("evals", "eval_harness", ("c1",), 0, HOUR, confounder=True),
    ]
    # c1 is missing from the benign list, b000 is wrongly in it: 99 + 1 benign accounts
    card = score(campaigns, BENIGN, 0, HOUR, [])
    assert card.benign_account_hours == pytest.approx(100.0)


def test_alert_naming_campaign_and_benign_accounts_is_true() -> None:
    card = card_for([fire("mix", ("b001", "s1"), 65 * MIN)])
    assert (card.true_alerts, card.false_alerts) == (1, 0)


def test_time_to_detect_goals() -> None:
    campaigns = [
        Campaign("solo", "solo_extraction", ("s1",), 0, HOUR),
        Campaign("templ", "templated", ("t1",), 0, HOUR),
        Campaign("slow", "low_and_slow", ("l1",), 0, 5 * HOUR),
    ]
    fast = [fire("1", ("s1",), 1 * MIN), fire("2", ("t1",), 2 * MIN), fire("3", ("l1",), 14 * MIN)]
    card = card_for(fast, campaigns)
    assert card.median_time_to_detect_ms == pytest.approx(1.5 * MIN)  # slow kinds left out
    assert card.meets_goals() == []
    slow = [fire("1", ("s1",), 1 * MIN), fire("2", ("t1",), 4 * MIN), fire("3", ("l1",), 16 * MIN)]
    failed = card_for(slow, campaigns).meets_goals()
    assert failed == [
        "median time to detect 2:30, goal <= 2:00",
        "slow (low_and_slow): time to detect 16:00, goal <= 15:00",
    ]
    # custom goals
    assert card_for(slow, campaigns).meets_goals(
        Goals(median_time_to_detect_ms=3 * MIN, slow_time_to_detect_ms=2 * HOUR)
    ) == []


def test_flapping_counts_alerts_per_incident() -> None:
    one = [fire("a", ("s1",), 62 * MIN), fire("b", ("s1",), 63 * MIN, rule="other_rule")]
    assert card_for(one).alerts_per_incident == 1.0          # two rules: two incidents
    two = Campaign("pair", "hydra", ("p1", "p2"), 60 * MIN, 120 * MIN)
    each = [fire("x", ("p1",), 62 * MIN), fire("y", ("p2",), 63 * MIN)]
    assert card_for(each, [two]).alerts_per_incident == 1.0   # one account each
    split = [fire("x", ("p1", "p2"), 62 * MIN), fire("y", ("p1", "p2"), 63 * MIN)]
    assert card_for(split, [two]).alerts_per_incident == 2.0  # one cluster, two ids
    flap = [fire(f"a{i}", ("s1",), (62 + 20 * i) * MIN) for i in range(3)]
    card = card_for(flap)
    assert card.alerts_per_incident == 3.0
    assert "3.00 firing alerts per incident, goal <= 1.20" in card.meets_goals()


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        Campaign("x", "solo_extraction", (), 0, 1)
    with pytest.raises(ValueError):
        Campaign("x", "solo_extraction", ("a",), 10, 1)
    with pytest.raises(ValueError):
        score([], BENIGN, 10, 0, [])
    same = Campaign("x", "solo_extraction", ("a",), 0, 1)
    with pytest.raises(ValueError):
        score([same, same], BENIGN, 0, 1, [])


def test_to_dict_is_json_ready() -> None:
    import json

    card = card_for([fire("f", ("b001",), MIN)], benign=())
    data = card.to_dict()
    assert data["false_alerts_per_1k_account_hours"] is None  # infinite: no benign hours
    assert data["median_time_to_detect_ms"] is None
    assert data["campaigns"][0]["name"] == "solo"
    json.dumps(data, allow_nan=False)


def test_scoring_imports_only_stdlib_and_numpy() -> None:
    tree = ast.parse(Path(models.scoring.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(n.name.split(".")[0] for n in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    import sys

    assert roots <= set(sys.stdlib_module_names) | {"numpy", "__future__"}, roots
