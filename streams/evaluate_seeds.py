"""``xwatch evaluate --scenario NAME --seeds A-B``: detection scored over many seeds at once.

Each seed builds the scenario, runs it through :func:`~streams.offline.detect_offline` (the
worker's own decode -> monitor -> population-view path) and scores the alerts; seeds run in
``jobs`` processes. The report pools the seeds: per campaign kind, how often it was caught,
how much of a multi-account campaign was named and how fast; over everything, precision,
false alerts per 1,000 benign account-hours, pages on confounders and firing alerts per
incident. The goals (issue 10's acceptance) are checked on the pooled figures.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from models.scoring import Goals, format_ms

__all__ = ["SeedRangeReport", "evaluate_seeds", "parse_seeds"]


def parse_seeds(text: str) -> list[int]:
    """``"11-40"``, ``"1,3,5"`` or ``"1-3,9"`` -> seeds.

    >>> parse_seeds("1-3,9")
    [1, 2, 3, 9]
    """
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise ValueError(f"seeds must look like 11-40 or 1,3,5, not {text!r}") from None
    if not out:
        raise ValueError("no seeds given")
    return out


def _one_seed(args: tuple[str, int]) -> dict[str, Any]:
    from streams.evaluate import evaluate
    from streams.offline import detect_offline
    from streams.simulate import build_scenario, encode_events

    name, seed = args
    s = build_scenario(name, seed=seed)
    alerts = detect_offline((v for _, _, v in encode_events(s)), accounts=s.account_records)
    card = evaluate(s.labels, alerts)
    out = card.to_dict()
    out["seed"] = seed
    return out


@dataclass
class SeedRangeReport:
    scenario: str
    seeds: list[int]
    cards: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> dict[str, dict[str, Any]]:
        """Per attack kind: seeds caught, named fraction (mean, worst), time to detect."""
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for card in self.cards:
            for c in card["campaigns"]:
                if not c["confounder"]:
                    rows[c["kind"]].append(c)
        out = {}
        for kind, cs in sorted(rows.items()):
            named = [c["accounts_named"] / c["accounts_total"] for c in cs if c["caught"]]
            ttd = [c["time_to_detect_ms"] for c in cs if c["time_to_detect_ms"] is not None]
            out[kind] = {
                "seeds": len(cs), "caught": sum(c["caught"] for c in cs),
                "caught_share": sum(c["caught"] for c in cs) / len(cs),
                "multi_account": any(c["accounts_total"] > 1 for c in cs),
                "named_mean": statistics.fmean(named) if named else 0.0,
                "named_worst": min(named) if named else 0.0,
                "ttd_median_ms": statistics.median(ttd) if ttd else None,
                "ttd_max_ms": max(ttd) if ttd else None,
                "rules": sorted({r for c in cs for r in c["rules"]}),
            }
        return out

    def confounders(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"seeds": 0, "alerted": 0, "pages": 0})
        for card in self.cards:
            for c in card["campaigns"]:
                if c["confounder"]:
                    row = out[c["kind"]]
                    row["seeds"] += 1
                    row["alerted"] += int(c["caught"])
                    row["pages"] += c["pages"]
        return dict(sorted(out.items()))

    def totals(self) -> dict[str, Any]:
        alerts = sum(c["alerts"] for c in self.cards)
        true = sum(c["true_alerts"] for c in self.cards)
        false = sum(c["false_alerts"] for c in self.cards)
        hours = sum(c["benign_account_hours"] for c in self.cards)
        att = [c for card in self.cards for c in card["campaigns"] if not c["confounder"]]
        incidents = sum(c["incidents"] for c in att)
        slow = Goals().slow_kinds
        fast_ttd = [math.inf if c["time_to_detect_ms"] is None else c["time_to_detect_ms"]
                    for c in att if c["kind"] not in slow]
        return {
            "seeds": len(self.cards), "alerts": alerts, "true_alerts": true, "false_alerts": false,
            "precision": true / alerts if alerts else 1.0,
            "false_alerts_per_1k_account_hours": 1000.0 * false / hours if hours else 0.0,
            "confounder_alerts": sum(c["confounder_alerts"] for c in self.cards),
            "confounder_pages": sum(c["confounder_pages"] for c in self.cards),
            "alerts_per_incident": sum(c["alerts"] for c in att) / incidents if incidents else 1.0,
            "median_time_to_detect_ms": statistics.median(fast_ttd) if fast_ttd else None,
        }

    def failed_goals(self, goals: Goals | None = None) -> list[str]:
        g = goals or Goals()
        failed = []
        for kind, k in self.kinds().items():
            if k["caught_share"] < 0.95:
                failed.append(f"{kind}: caught on {k['caught']}/{k['seeds']} seeds, goal >= 95%")
            if k["multi_account"] and k["named_mean"] < g.named_fraction:
                failed.append(f"{kind}: {k['named_mean']:.0%} of members named on average, "
                              f"goal >= {g.named_fraction:.0%}")
            if kind in g.slow_kinds and (k["ttd_median_ms"] or math.inf) > g.slow_time_to_detect_ms:
                failed.append(f"{kind}: median time to detect {format_ms(k['ttd_median_ms'] or math.inf)}, "
                              f"goal <= {format_ms(g.slow_time_to_detect_ms)}")
        t = self.totals()
        if t["precision"] < g.precision:
            failed.append(f"precision {t['precision']:.3f}, goal >= {g.precision}")
        if t["false_alerts_per_1k_account_hours"] > g.false_alerts_per_1k_account_hours:
            failed.append(f"{t['false_alerts_per_1k_account_hours']:.2f} false alerts per 1,000 "
                          f"benign account-hours, goal <= {g.false_alerts_per_1k_account_hours}")
        if t["confounder_pages"] > g.confounder_pages:
            failed.append(f"{t['confounder_pages']} page(s) on confounders, goal 0")
        if t["alerts_per_incident"] > g.alerts_per_incident:
            failed.append(f"{t['alerts_per_incident']:.2f} firing alerts per incident, "
                          f"goal <= {g.alerts_per_incident}")
        median = t["median_time_to_detect_ms"]
        if median is None or median > g.median_time_to_detect_ms:
            failed.append(f"median time to detect {format_ms(median if median is not None else math.inf)}, "
                          f"goal <= {format_ms(g.median_time_to_detect_ms)}")
        return failed

    def to_dict(self) -> dict[str, Any]:
        def clean(x: Any) -> Any:
            if isinstance(x, float) and math.isinf(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        return clean({"scenario": self.scenario, "seeds": self.seeds, "kinds": self.kinds(),
                      "confounders": self.confounders(), "totals": self.totals(),
                      "failed_goals": self.failed_goals(), "per_seed": self.cards})


def evaluate_seeds(scenario: str, seeds: list[int], jobs: int = 1,
                   progress: Callable[[int], None] | None = None) -> SeedRangeReport:
    """Score ``scenario`` on every seed (``jobs`` processes); ``progress`` is called per seed."""
    report = SeedRangeReport(scenario, seeds)
    work = [(scenario, s) for s in seeds]
    if jobs <= 1:
        for w in work:
            report.cards.append(_one_seed(w))
            if progress:
                progress(w[1])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for card in pool.map(_one_seed, work):
                report.cards.append(card)
                if progress:
                    progress(card["seed"])
    return report
