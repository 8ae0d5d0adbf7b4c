"""Detection goals, scored with the same code as `xwatch evaluate`, on the worker's own path.

``streams.offline.detect_offline`` runs the worker's per-partition fold
(``streams.pipeline.fold_batch``: decode, columns, monitor step, summary encoding) and the
population view fed with the encoded summaries, as the summaries topic carries them.

* issue 3's 6-hour scenario (every campaign of the first simulator, three confounders);
* the ``wild`` scenario (ServeGen background, randomised campaigns and look-alikes written
  apart from the detectors) on two of the tuning seeds; the held-out seeds 11-40 are for
  ``xwatch evaluate --scenario wild --seeds 11-40``, not for tests that tuning could see.
"""

from __future__ import annotations

import pytest

from models.scoring import Goals
from streams.evaluate import score_alerts
from streams.evaluate_seeds import evaluate_seeds
from streams.offline import detect_offline
from streams.simulate import build_scenario, encode_events


@pytest.mark.parametrize("seed", [1, 2])
def test_full_scenario_meets_the_detection_goals(seed: int) -> None:
    s = build_scenario("full", seed=seed)
    alerts = detect_offline((v for _, _, v in encode_events(s)), accounts=s.account_records)
    card = score_alerts(s.labels, alerts)
    # This simulator's low-and-slow ramps over two hours to 60%: caught in about 20 minutes
    # (the 15-minute goal is the wild scenario's, checked by `xwatch evaluate --scenario`).
    # Its bursty honest tenants (and the hourly batch job) get a few `info` leads from
    # extraction_drift on some seeds: no page, but false alerts, so precision and the
    # false-alert rate are checked at the looser bounds below (see issue 10's note).
    goals = Goals(slow_time_to_detect_ms=30 * 60_000, precision=0.8,
                  false_alerts_per_1k_account_hours=3.0)
    assert card.meets_goals(goals) == [], card.to_dict()
    caught = {c.kind for c in card.campaigns if c.caught and not c.confounder}
    assert caught == {c.kind for c in s.labels.attacks}
    hydra = next(c for c in card.campaigns if c.kind == "hydra_cluster")
    assert hydra.accounts_named / hydra.accounts_total >= 0.9
    attackers = {a for c in s.labels.attacks for a in c.accounts}
    honest_pages = [a for a in alerts if a.status == "firing" and a.severity != "info"
                    and not attackers & set(a.account_ids)]
    assert card.confounder_pages == 0 and honest_pages == []
    named = {a for alert in alerts for a in alert.account_ids}
    assert s.labels.biggest_benign_account not in named


def test_wild_scenario_every_kind_caught_and_no_confounder_paged() -> None:
    report = evaluate_seeds("wild", [1, 2])
    kinds = report.kinds()
    assert len(kinds) == 10
    # stolen_key is left out: on some seeds the victim has no history before the theft,
    # and that rule compares an account with its own past (see the issue note)
    missed = {k: v["caught"] for k, v in kinds.items() if v["caught"] < 2 and k != "stolen_key"}
    assert missed == {}, kinds
    for kind, k in kinds.items():
        if k["multi_account"]:
            assert k["named_mean"] >= 0.85, (kind, k)
    totals = report.totals()
    assert totals["confounder_pages"] == 0
    assert totals["precision"] >= 0.95
    assert totals["alerts_per_incident"] <= 1.5
    assert report.confounders()["mobile_app"]["alerted"] == 0
