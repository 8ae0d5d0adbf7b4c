"""Issue 3's goals on the 6-hour scenario with every campaign and confounder, two seeds.

Runs the worker's decode/columns/monitor/coordination code without a broker (streams.offline)
and scores with the same helper as `xwatch evaluate`.
"""

from __future__ import annotations

import pytest

from streams.evaluate import score_alerts
from streams.offline import detect_offline
from streams.simulate import build_scenario, encode_events


@pytest.mark.parametrize("seed", [1, 2])
def test_full_scenario_meets_the_detection_goals(seed: int) -> None:
    s = build_scenario("full", seed=seed)
    alerts = detect_offline((v for _, _, v in encode_events(s)), accounts=s.account_records)
    card = score_alerts(s.labels, alerts)
    assert card.meets_goals() == [], card.to_dict()
    caught = {c.kind for c in card.campaigns if c.caught and not c.confounder}
    assert caught == {c.kind for c in s.labels.attacks}
    hydra = next(c for c in card.campaigns if c.kind == "hydra_cluster")
    assert hydra.accounts_named / hydra.accounts_total >= 0.9
    assert card.confounder_alerts == 0 and card.false_alerts == 0
    named = {a for alert in alerts for a in alert.account_ids}
    assert s.labels.biggest_benign_account not in named
