"""Score alerts against what a scenario is known to contain: the figures ``xwatch evaluate`` prints.

Pure code: campaigns, benign accounts and alerts come in as plain values, a frozen
:class:`Scorecard` comes out. Reading label files and alert topics is the shell's job
(``streams/evaluate.py``).

The rules, in one place:

* Only ``firing`` records are alerts, counted once per ``alert_id``; a ``resolved`` record
  (or a replayed duplicate) of the same id is not another alert.
* An alert *detects* a campaign when it names at least one of the campaign's accounts and
  its evidence window ends at or after the campaign start (``window_end_ts >= start_ts``).
  Time to detect is the first such ``window_end_ts`` minus the campaign start, in event time.
* An alert is *true* when it detects at least one attack (non-confounder) campaign, else
  *false* — so an alert on a campaign account for a window that ended before the campaign
  began is false: the account was still behaving honestly then.
* A *confounder alert* names any account of a confounder (honest traffic that looks odd),
  whatever its window.
* Benign account-hours = benign accounts (confounder accounts included, attack accounts
  excluded) × scenario duration in hours.

Examples
--------
>>> MIN = 60_000
>>> campaigns = [
...     Campaign("solo", "solo_extraction", ("a1",), start_ts=10 * MIN, end_ts=40 * MIN),
...     Campaign("hydra", "hydra_cluster", ("h1", "h2", "h3", "h4"), 20 * MIN, 50 * MIN),
...     Campaign("batch_job", "eval_harness", ("c1",), 0, 60 * MIN, confounder=True),
... ]
>>> benign = [f"b{i}" for i in range(99)] + ["c1"]
>>> alerts = [
...     AlertRecord("x1", "firing", "volume_spike", ("a1",), 10 * MIN, 11 * MIN),
...     AlertRecord("x1", "resolved", "volume_spike", ("a1",), 10 * MIN, 15 * MIN),
...     AlertRecord("x2", "firing", "coordinated_accounts", ("h1", "h2", "h3"), 20 * MIN, 23 * MIN),
...     AlertRecord("x3", "firing", "population_outlier", ("b7",), 30 * MIN, 31 * MIN),
... ]
>>> card = score(campaigns, benign, start_ts=0, end_ts=60 * MIN, alerts=alerts)
>>> for row in card.attacks:
...     print(row.name, row.caught, f"{row.accounts_named}/{row.accounts_total}",
...           row.time_to_detect_ms, row.rules)
solo True 1/1 60000 ('volume_spike',)
hydra True 3/4 180000 ('coordinated_accounts',)
>>> card.alerts, card.true_alerts, card.false_alerts, round(card.precision, 3)
(3, 2, 1, 0.667)
>>> card.benign_account_hours, card.false_alerts_per_1k_account_hours
(100.0, 10.0)
>>> format_ms(card.median_time_to_detect_ms), card.confounder_alerts
('2:00', 0)
>>> for goal in card.meets_goals():
...     print(goal)
hydra (hydra_cluster): named 3/4 accounts (75%), goal >= 90%
alert precision 0.67, goal >= 0.95
10.00 false alerts per 1,000 benign account-hours, goal <= 0.50
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AlertRecord", "Campaign", "CampaignScore", "Goals", "Scorecard", "format_ms", "score"]

_HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Campaign:
    """One labelled campaign, or a confounder (honest traffic that must not be alerted on)."""

    name: str
    kind: str
    accounts: tuple[str, ...]
    start_ts: int
    end_ts: int
    confounder: bool = False

    def __post_init__(self) -> None:
        if not self.accounts:
            raise ValueError(f"campaign {self.name!r} has no accounts")
        if self.end_ts < self.start_ts:
            raise ValueError(f"campaign {self.name!r} ends before it starts")


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The part of an alert that scoring looks at."""

    alert_id: str
    status: str
    rule: str
    account_ids: tuple[str, ...]
    window_start_ts: int
    window_end_ts: int
    severity: str = "warning"

    @property
    def pages(self) -> bool:
        """``warning`` and ``critical`` wake a person; ``info`` does not."""
        return self.severity in ("warning", "critical")


@dataclass(frozen=True, slots=True)
class Goals:
    """The figures a detector build must reach; :meth:`Scorecard.meets_goals` checks them.

    Every campaign caught; every multi-account campaign named at ``named_fraction``; the
    median time to detect over the fast kinds; the slow kinds each within their own bound;
    precision; false alerts per benign account-hour; no page on a confounder (``info`` is
    allowed: a person may look); no flapping (firing alerts per incident)."""

    named_fraction: float = 0.9
    median_time_to_detect_ms: int = 2 * 60_000
    slow_time_to_detect_ms: int = 15 * 60_000
    precision: float = 0.95
    false_alerts_per_1k_account_hours: float = 0.5
    confounder_pages: int = 0
    alerts_per_incident: float = 1.2
    slow_kinds: tuple[str, ...] = ("low_and_slow", "slow_swarm")

    # kept for callers of the first scorecard
    @property
    def low_and_slow_kind(self) -> str:
        return self.slow_kinds[0]


@dataclass(frozen=True, slots=True)
class CampaignScore:
    """How the alerts did on one campaign (or, with ``confounder``, how often they hit it)."""

    name: str
    kind: str
    caught: bool
    accounts_named: int
    accounts_total: int
    time_to_detect_ms: int | None
    rules: tuple[str, ...]
    confounder: bool = False
    pages: int = 0                # warning/critical alerts that named it
    alerts: int = 0               # distinct firing alert ids that named it
    incidents: int = 0            # distinct incidents among them (see _incident)

    @property
    def named_fraction(self) -> float:
        return self.accounts_named / self.accounts_total


@dataclass(frozen=True, slots=True)
class Scorecard:
    """Per-campaign rows and the totals over all firing alerts."""

    campaigns: tuple[CampaignScore, ...]
    alerts: int
    true_alerts: int
    false_alerts: int
    confounder_alerts: int
    benign_account_hours: float
    false_alerts_by_rule: tuple[tuple[str, int], ...] = field(default=())
    confounder_pages: int = 0

    @property
    def alerts_per_incident(self) -> float:
        """Firing alerts (distinct ids) on attacks per incident (a rule on one account, or a
        rule on a campaign for multi-account alerts): 1.0 when each incident raised one
        alert, more when one flapped (fired, resolved, fired again) or a cluster split."""
        incidents = sum(c.incidents for c in self.attacks)
        return sum(c.alerts for c in self.attacks) / incidents if incidents else 1.0

    @property
    def attacks(self) -> tuple[CampaignScore, ...]:
        return tuple(c for c in self.campaigns if not c.confounder)

    @property
    def confounders(self) -> tuple[CampaignScore, ...]:
        return tuple(c for c in self.campaigns if c.confounder)

    @property
    def precision(self) -> float:
        """True alerts over all alerts; 1.0 when there are no alerts."""
        return self.true_alerts / self.alerts if self.alerts else 1.0

    @property
    def false_alerts_per_1k_account_hours(self) -> float:
        if self.benign_account_hours > 0:
            return 1000.0 * self.false_alerts / self.benign_account_hours
        return math.inf if self.false_alerts else 0.0

    @property
    def median_time_to_detect_ms(self) -> float | None:
        """Median over attack campaigns other than the slow kinds; a missed campaign counts as
        never detected (infinite). ``None`` when there is no such campaign."""
        return _median_ttd(self.attacks, Goals().slow_kinds)

    def meets_goals(self, goals: Goals | None = None) -> list[str]:
        """The goals missed, one readable line each; an empty list when all are met."""
        g = goals or Goals()
        failed: list[str] = []
        for c in self.attacks:
            if not c.caught:
                failed.append(f"{c.name} ({c.kind}): not caught")
            elif c.accounts_total > 1 and c.named_fraction < g.named_fraction:
                failed.append(
                    f"{c.name} ({c.kind}): named {c.accounts_named}/{c.accounts_total} accounts "
                    f"({c.named_fraction:.0%}), goal >= {g.named_fraction:.0%}"
                )
        median = _median_ttd(self.attacks, g.slow_kinds)
        if median is not None and median > g.median_time_to_detect_ms:
            failed.append(
                f"median time to detect {format_ms(median)}, "
                f"goal <= {format_ms(g.median_time_to_detect_ms)}"
            )
        for c in self.attacks:
            ttd = c.time_to_detect_ms
            if c.kind in g.slow_kinds and ttd is not None and ttd > g.slow_time_to_detect_ms:
                failed.append(
                    f"{c.name} ({c.kind}): time to detect {format_ms(ttd)}, "
                    f"goal <= {format_ms(g.slow_time_to_detect_ms)}"
                )
        if self.precision < g.precision:
            failed.append(f"alert precision {self.precision:.2f}, goal >= {g.precision:.2f}")
        rate = self.false_alerts_per_1k_account_hours
        if rate > g.false_alerts_per_1k_account_hours:
            failed.append(
                f"{rate:.2f} false alerts per 1,000 benign account-hours, "
                f"goal <= {g.false_alerts_per_1k_account_hours:.2f}"
            )
        if self.confounder_pages > g.confounder_pages:
            failed.append(
                f"{self.confounder_pages} page(s) (warning/critical) on confounders, "
                f"goal <= {g.confounder_pages}"
            )
        if self.alerts_per_incident > g.alerts_per_incident:
            failed.append(f"{self.alerts_per_incident:.2f} firing alerts per incident, "
                          f"goal <= {g.alerts_per_incident:.2f}")
        return failed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: fields, derived figures, infinities as ``None``.

        >>> Scorecard((), 0, 0, 0, 0, 0.0).to_dict()["precision"]
        1.0
        """
        out = asdict(self)
        out["false_alerts_by_rule"] = dict(self.false_alerts_by_rule)
        for name in ("precision", "false_alerts_per_1k_account_hours", "median_time_to_detect_ms",
                     "alerts_per_incident"):
            value = getattr(self, name)
            out[name] = None if value is None or math.isinf(value) else value
        return out


def score(
    campaigns: Sequence[Campaign],
    benign_accounts: Iterable[str],
    start_ts: int,
    end_ts: int,
    alerts: Iterable[AlertRecord],
) -> Scorecard:
    """Score ``alerts`` against the labelled ``campaigns`` of a scenario from ``start_ts`` to
    ``end_ts`` (epoch ms, event time) in which ``benign_accounts`` were honest."""
    if end_ts < start_ts:
        raise ValueError("scenario ends before it starts")
    names = [c.name for c in campaigns]
    if len(set(names)) != len(names):
        raise ValueError("campaign names must be unique")

    alerts = list(alerts)
    firing = _distinct_firing(alerts)
    # a re-sent alert (a cluster that grew) detects what it names when it is sent
    copies = [a for a in alerts if a.status == "firing"]
    attack_accounts = {a for c in campaigns if not c.confounder for a in c.accounts}
    confounder_accounts = {a for c in campaigns if c.confounder for a in c.accounts}

    rows: list[CampaignScore] = []
    true_ids: set[str] = set()
    for c in campaigns:
        members = set(c.accounts)
        hit_copies = [
            a for a in copies
            if a.window_end_ts >= c.start_ts and not members.isdisjoint(a.account_ids)
        ]
        hit_ids = {a.alert_id for a in hit_copies}
        hits = [a for a in firing if a.alert_id in hit_ids]
        if not c.confounder:
            true_ids.update(hit_ids)
        named = members.intersection(acc for a in hit_copies for acc in a.account_ids)
        rows.append(
            CampaignScore(
                name=c.name,
                kind=c.kind,
                caught=bool(hits),
                accounts_named=len(named),
                accounts_total=len(members),
                time_to_detect_ms=(min(a.window_end_ts for a in hit_copies) - c.start_ts
                                   if hit_copies else None),
                rules=tuple(sorted({a.rule for a in hits})),
                confounder=c.confounder,
                pages=sum(1 for a in hits if a.pages),
                alerts=len(hits),
                incidents=len({_incident(a, c.name) for a in hits}),
            )
        )

    false_rules = Counter(a.rule for a in firing if a.alert_id not in true_ids)
    benign = (set(benign_accounts) | confounder_accounts) - attack_accounts
    return Scorecard(
        campaigns=tuple(rows),
        alerts=len(firing),
        true_alerts=len(true_ids),
        false_alerts=len(firing) - len(true_ids),
        confounder_alerts=sum(1 for a in firing if not confounder_accounts.isdisjoint(a.account_ids)),
        benign_account_hours=len(benign) * (end_ts - start_ts) / _HOUR_MS,
        false_alerts_by_rule=tuple(sorted(false_rules.items())),
        confounder_pages=sum(1 for a in firing if a.pages
                             and not confounder_accounts.isdisjoint(a.account_ids)),
    )


def format_ms(ms: float) -> str:
    """Event-time duration as ``m:ss`` (``h:mm:ss`` from an hour).

    >>> format_ms(95_000), format_ms(3_725_000), format_ms(math.inf)
    ('1:35', '1:02:05', 'never')
    """
    if math.isinf(ms):
        return "never"
    minutes, seconds = divmod(round(ms / 1000), 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def _distinct_firing(alerts: Iterable[AlertRecord]) -> list[AlertRecord]:
    """One record per firing ``alert_id``: the earliest window, every account any copy named."""
    by_id: dict[str, AlertRecord] = {}
    for a in alerts:
        if a.status != "firing":
            continue
        seen = by_id.get(a.alert_id)
        if seen is None:
            by_id[a.alert_id] = AlertRecord(
                a.alert_id, a.status, a.rule, tuple(a.account_ids), a.window_start_ts,
                a.window_end_ts, a.severity,
            )
            continue
        accounts = seen.account_ids + tuple(x for x in a.account_ids if x not in seen.account_ids)
        by_id[a.alert_id] = AlertRecord(
            a.alert_id,
            a.status,
            seen.rule,
            accounts,
            min(seen.window_start_ts, a.window_start_ts),
            min(seen.window_end_ts, a.window_end_ts),
            max(seen.severity, a.severity, key=lambda v: _SEVERITY_RANK.get(v, 0)),   # escalations
        )
    return list(by_id.values())


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def _incident(a: AlertRecord, campaign: str) -> tuple[str, ...]:
    """What one alert is about: a rule on one account, or a rule on a campaign's accounts
    together (cluster alerts). Two alert ids for the same incident are flapping, or a
    cluster split in two."""
    if len(a.account_ids) == 1:
        return (a.rule, a.account_ids[0])
    return (a.rule, "campaign:" + campaign)


def _median_ttd(attacks: Iterable[CampaignScore], slow_kinds: tuple[str, ...]) -> float | None:
    times = [
        math.inf if c.time_to_detect_ms is None else float(c.time_to_detect_ms)
        for c in attacks
        if c.kind not in slow_kinds
    ]
    return statistics.median(times) if times else None
