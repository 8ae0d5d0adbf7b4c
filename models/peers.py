"""Peer groups: the accounts an account is fairly compared with — same tier, same age band.

An enterprise tenant that has sent reasoning-heavy traffic for years and a free account
created this morning that sends the same traffic are not alike. A peer group is the pair
(tier, age band):

* the tier is the account record's ``tier`` (the optional ``api.accounts`` stream),
  lower-cased; ``"unknown"`` without a record or a tier;
* the age is the window end minus the record's ``created_ts``, or, without one, minus the
  first time this partition saw the account; the bands are ``<1d``, ``1-30d`` and ``>30d``.

Tier names come from outside and are unbounded, so :class:`PeerGroups` gives dense ids to
at most ``max_tiers`` of them, first come first served (``"unknown"`` and ``"other"``
included); later tiers share the ``"other"`` group. A group id is ``tier * 3 + band``.

>>> DAY = 86_400_000
>>> records = {"e1": AccountProfile("Enterprise", 0), "f1": AccountProfile("free", 30 * DAY)}
>>> pg = PeerGroups()                      # "x" has no record: first seen an hour ago
>>> g = pg.assign(["e1", "f1", "x"], 40 * DAY + 3_600_000, np.full(3, 40 * DAY), records.get)
>>> [pg.label(i) for i in g.tolist()]
[('enterprise', '>30d'), ('free', '1-30d'), ('unknown', '<1d')]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["AGE_BANDS", "AGE_BAND_EDGES_MS", "OTHER_TIER", "UNKNOWN_TIER", "AccountProfile",
           "PeerGroups", "Profile", "ProfileLookup", "age_band"]

_DAY_MS = 86_400_000
AGE_BAND_EDGES_MS = (_DAY_MS, 30 * _DAY_MS)     # band i: edges[i-1] <= age < edges[i]
AGE_BANDS = ("<1d", "1-30d", ">30d")
UNKNOWN_TIER = "unknown"
OTHER_TIER = "other"
_MAX_TIER_CHARS = 32


class Profile(Protocol):
    """What the monitor needs to know about an account (an ``AccountRecord`` is one)."""

    @property
    def tier(self) -> str | None: ...

    @property
    def created_ts(self) -> int | None: ...


ProfileLookup = Callable[[str], Profile | None]


@dataclass(frozen=True, slots=True)
class AccountProfile:
    """The two facts of an account record that place it among its peers."""

    tier: str | None = None
    created_ts: int | None = None      # epoch ms


def age_band(age_ms: np.ndarray) -> np.ndarray:
    """Index into :data:`AGE_BANDS` per age (negative ages, clock skew, count as new).

    >>> age_band(np.array([-5, 0, 86_399_999, 86_400_000, 30 * 86_400_000])).tolist()
    [0, 0, 0, 1, 2]
    """
    edges = np.asarray(AGE_BAND_EDGES_MS, dtype=np.int64)
    return np.searchsorted(edges, np.asarray(age_ms, dtype=np.int64), side="right")


class PeerGroups:
    """Dense ids for (tier, age band), with a cap on how many tiers get their own.

    Parameters
    ----------
    max_tiers
        Tiers with a group of their own, ``"unknown"`` and ``"other"`` included.

    >>> pg = PeerGroups(max_tiers=3)
    >>> [pg.tier_id(t) for t in ("pro", None, "", " PRO ", "team", "edu")]
    [2, 0, 0, 2, 1, 1]
    >>> pg.tiers, pg.n_groups
    (['unknown', 'other', 'pro'], 9)
    >>> PeerGroups.from_dict(pg.to_dict()).tiers == pg.tiers
    True
    """

    def __init__(self, max_tiers: int = 16) -> None:
        if max_tiers < 2:
            raise ValueError("max_tiers must leave room for 'unknown' and 'other'")
        self.max_tiers = max_tiers
        self.tiers: list[str] = [UNKNOWN_TIER, OTHER_TIER]
        self._index = {t: i for i, t in enumerate(self.tiers)}

    @property
    def n_groups(self) -> int:
        return len(self.tiers) * len(AGE_BANDS)

    def tier_id(self, tier: str | None) -> int:
        """The tier's id, giving it one while there is room (``"other"`` once there is not)."""
        if not tier:
            return 0
        i = self._index.get(tier)
        if i is not None:
            return i
        name = tier.strip().lower()[:_MAX_TIER_CHARS] or UNKNOWN_TIER
        i = self._index.get(name)
        if i is None:
            if len(self.tiers) >= self.max_tiers:
                return self._index[OTHER_TIER]     # not remembered: the cap holds
            i = len(self.tiers)
            self.tiers.append(name)
            self._index[name] = i
        return i

    def label(self, group: int) -> tuple[str, str]:
        """(tier, age band) of a group id."""
        tier, band = divmod(int(group), len(AGE_BANDS))
        return self.tiers[tier], AGE_BANDS[band]

    def assign(self, account_ids: Sequence[str], end_ts: int, first_seen_ts: np.ndarray,
               profiles: ProfileLookup | None = None) -> np.ndarray:
        """Group id per account at a window's end; ``profiles`` may answer ``None``."""
        n = len(account_ids)
        created = np.asarray(first_seen_ts, dtype=np.int64).copy()
        tiers = np.zeros(n, dtype=np.int64)
        if profiles is not None:
            for i, account in enumerate(account_ids):
                p = profiles(account)
                if p is None:
                    continue
                tiers[i] = self.tier_id(p.tier)
                if p.created_ts is not None:
                    created[i] = p.created_ts
        return tiers * len(AGE_BANDS) + age_band(end_ts - created)

    # -- plain-data snapshots -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"max_tiers": self.max_tiers, "tiers": list(self.tiers)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeerGroups:
        pg = cls(int(d["max_tiers"]))
        for name in d["tiers"][2:]:
            pg.tier_id(str(name))
        return pg
