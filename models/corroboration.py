"""Who an account is, and how loud a finding about it may be: the severity policy.

A page (``warning`` or ``critical``) wakes a person, so it must be earned:

* **trusted** accounts (verified, 30 days old or more, per the account stream) are judged
  only against their own history: what an established customer has always done is its
  baseline, however templated or reasoning-heavy it is (benchmark suites, eval harnesses).
  Only rules in :data:`OWN_HISTORY_RULES` (a change against the account's past: its key
  used from new networks, its extraction-like share drifting up) report on them, and at
  ``info`` (a lead for a person to look at: an eval run looks like a drift too), except
  ``credential_compromise``, whose gate is itself corroborated (``warning``);
* rules in :data:`CORROBORATING` (anomaly scores, drift of a blended score) never alert
  alone: they add weight to another rule's finding on the same account and window;
* one independent signal is at most ``warning``; ``critical`` needs two rule families on
  the same account-window, a rule that saw two independent signs itself (it lists them in
  its evidence as ``independent_signs``), or a cluster (see :mod:`models.coordination`);
* each finding's evidence lists what corroborated it.

>>> import numpy as np
>>> from models.detectors.base import Hit
>>> hits = [Hit("extraction_yield", "critical", 0, 0.9, 0.5, "s"),
...         Hit("templated_extraction", "warning", 0, 0.8, 0.6, "s"),
...         Hit("population_outlier", "info", 1, 0.95, 0.9, "s"),
...         Hit("templated_extraction", "critical", 2, 0.8, 0.6, "s")]
>>> trusted = np.array([False, False, True])
>>> [(h.rule, h.row, h.severity, h.evidence.get("corroborated_by")) for h in apply_policy(hits, trusted)]
[('extraction_yield', 0, 'critical', ['templated_extraction']), ('templated_extraction', 0, 'critical', ['extraction_yield'])]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from models.detectors.base import Hit

__all__ = ["CORROBORATING", "OWN_HISTORY_RULES", "SEVERITIES", "TRUSTED_AGE_MS", "YOUNG_AGE_MS",
           "apply_policy", "trust_of"]

SEVERITIES = ("info", "warning", "critical")
TRUSTED_AGE_MS = 30 * 86_400_000
YOUNG_AGE_MS = 3 * 86_400_000
OWN_HISTORY_RULES = frozenset({"credential_compromise", "extraction_drift"})
CORROBORATING = frozenset({"behavior_drift", "population_outlier"})


def trust_of(lookup: Callable[[str], object | None] | None, account_ids: list[str],
             end_ts: int, first_seen_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(trusted, untrusted) per account; an account can be neither (verified but young).

    Untrusted: no account record, not verified, or created less than 3 days ago (without a
    ``created_ts``, the first time this worker saw it stands in).

    >>> from types import SimpleNamespace as R
    >>> recs = {"old": R(verified=True, created_ts=0), "new": R(verified=True, created_ts=90 * 86_400_000)}
    >>> t, u = trust_of(recs.get, ["old", "new", "anon"], 91 * 86_400_000, np.zeros(3, dtype=np.int64))
    >>> t.tolist(), u.tolist()
    ([True, False, False], [False, True, True])
    """
    n = len(account_ids)
    trusted = np.zeros(n, dtype=bool)
    untrusted = np.ones(n, dtype=bool)
    if lookup is None:
        return trusted, untrusted
    for i, a in enumerate(account_ids):
        rec = lookup(a)
        if rec is None:
            continue
        created = getattr(rec, "created_ts", None)
        age = end_ts - (int(first_seen_ts[i]) if created is None else int(created))
        verified = bool(getattr(rec, "verified", False))
        trusted[i] = verified and age >= TRUSTED_AGE_MS
        untrusted[i] = not verified or age < YOUNG_AGE_MS
    return trusted, untrusted


def apply_policy(hits: list[Hit], trusted: np.ndarray) -> list[Hit]:
    """The hits that may alert, with their severity set by the policy above."""
    by_row: dict[int, list[Hit]] = defaultdict(list)
    for h in hits:
        by_row[h.row].append(h)
    out: list[Hit] = []
    for row in sorted(by_row):
        row_hits = by_row[row]
        if trusted[row]:
            row_hits = [h for h in row_hits if h.rule in OWN_HISTORY_RULES or h.rule in CORROBORATING]
        primary = [h for h in row_hits if h.rule not in CORROBORATING]
        families = {h.rule for h in row_hits}
        for h in primary:
            others = sorted({x.rule for x in row_hits if x.rule != h.rule})
            sev = SEVERITIES.index(h.severity)
            if trusted[row]:
                # an established customer's change against its own past is a lead, not a
                # page, unless the rule itself is corroborated (a key used from a new
                # operator at volume, pulling long answers)
                sev = 1 if h.rule == "credential_compromise" else 0
            elif len(families) >= 2:
                sev = max(sev, 1) + 1
            elif len(h.evidence.get("independent_signs", ())) < 2:
                sev = min(sev, 1)                  # one signal: warning at most
            sev = min(sev, 2)
            ev = dict(h.evidence)
            if others:
                ev["corroborated_by"] = others
            out.append(replace(h, severity=SEVERITIES[sev], evidence=ev))
    return out
