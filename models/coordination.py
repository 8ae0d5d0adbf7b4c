"""Coordinated accounts ("hydra" clusters): many accounts acting as one.

Per-account detectors cannot see a campaign spread over a hundred modest accounts. Each
partition monitor therefore emits an :class:`AccountSummary` for account-windows that look
even mildly like extraction; this detector sees all of them (a cross-account view) and
links accounts that share identifying keys in the same window: a network (/24), a user
agent on an ASN, a prompt template (SimHash bands) and, when the account stream provides
it, a payment fingerprint. Accounts sharing at least ``min_shared_types`` kinds of key
with ``min_accounts`` or more others form a cluster; a cluster whose accounts look like
extraction on average fires one ``coordinated_accounts`` alert that names every member.
When more members join later, the alert is sent again with the same ``alert_id`` and the
longer member list; after ``cooldown_windows`` quiet windows it is resolved.

>>> det = CoordinationDetector(window_ms=60_000, min_accounts=3)
>>> for i in range(4):
...     det.add(AccountSummary(f"h{i}", 0, 60_000, requests=5, extraction_score=0.8,
...                            template_fp=0xABCD_0000_1234_0000 + i, net=7, ua=9, asn=3))
>>> det.add(AccountSummary("honest", 0, 60_000, requests=50, extraction_score=0.35,
...                        template_fp=0x1111, net=8, ua=9, asn=4))
>>> [(f.rule, f.account_ids) for f in det.flush()]
[('coordinated_accounts', ('h0', 'h1', 'h2', 'h3'))]
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from models.incidents import Finding, alert_id_for

__all__ = ["AccountSummary", "CoordinationDetector"]

RULE = "coordinated_accounts"


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """One account's window, reduced to what the cross-account view needs (plain data)."""

    account_id: str
    window_start_ts: int
    window_end_ts: int
    requests: int
    extraction_score: float
    template_fp: int = 0          # representative prompt fingerprint (0: none)
    net: int = 0                  # smallest network hash seen (0: none)
    ua: int = 0
    asn: int = 0
    first_seen_ts: int = 0
    windows_seen: int = 0
    payment_fp: str | None = None
    created_ts: int | None = None

    def keys(self) -> list[tuple[str, str]]:
        """(key type, key) pairs this account-window can share with others."""
        out: list[tuple[str, str]] = []
        if self.net:
            out.append(("net", f"net:{self.net}"))
        if self.ua:
            out.append(("client", f"ua:{self.ua}:asn:{self.asn}"))
        if self.template_fp:
            fp = self.template_fp
            out += [("template", f"tpl{j}:{(fp >> (16 * j)) & 0xFFFF}") for j in range(4)]
        if self.payment_fp:
            out.append(("payment", f"pay:{self.payment_fp}"))
        return out

    def with_account(self, payment_fp: str | None, created_ts: int | None) -> AccountSummary:
        """The summary enriched with what the account stream says."""
        return replace(self, payment_fp=payment_fp, created_ts=created_ts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccountSummary:
        return cls(**d)


@dataclass(slots=True)
class _Cluster:
    cluster_id: str
    alert_id: str
    first_start_ts: int
    members: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    last_hit_end_ts: int = 0
    peak_score: float = 0.0


class CoordinationDetector:
    def __init__(self, window_ms: int, min_accounts: int = 10, min_shared_types: int = 2,
                 min_score: float = 0.45, cooldown_windows: int = 3,
                 close_after_windows: int = 2) -> None:
        if min_accounts < 2:
            raise ValueError("min_accounts must be >= 2")
        self.window_ms = window_ms
        self.min_accounts = min_accounts
        self.min_shared_types = min_shared_types
        self.min_score = min_score
        self.cooldown_windows = cooldown_windows
        self.close_after_windows = close_after_windows
        self._windows: dict[int, dict[str, AccountSummary]] = {}
        self._latest_end = -1
        self._clusters: dict[str, _Cluster] = {}
        self._cluster_of_key: dict[str, str] = {}

    @property
    def open_windows(self) -> list[int]:
        """Start times of the windows that still take summaries."""
        return sorted(self._windows)

    def add(self, s: AccountSummary) -> None:
        self._windows.setdefault(s.window_start_ts, {})[s.account_id] = s
        self._latest_end = max(self._latest_end, s.window_end_ts)

    def close_ready(self) -> list[Finding]:
        """Close windows that summaries from later windows show to be complete."""
        limit = self._latest_end - self.close_after_windows * self.window_ms
        out: list[Finding] = []
        for start in sorted(self._windows):
            if start + self.window_ms > limit:
                break
            out += self._close(start, self._windows.pop(start))
        return out

    def flush(self) -> list[Finding]:
        out: list[Finding] = []
        for start in sorted(self._windows):
            out += self._close(start, self._windows.pop(start))
        return out

    def _close(self, start: int, summaries: dict[str, AccountSummary]) -> list[Finding]:
        end = start + self.window_ms
        by_key: dict[str, set[str]] = defaultdict(set)
        key_type: dict[str, str] = {}
        for acc, s in summaries.items():
            for kt, k in s.keys():
                by_key[k].add(acc)
                key_type[k] = kt
        shared = {k: accs for k, accs in by_key.items() if len(accs) >= self.min_accounts}
        types_of: dict[str, set[str]] = defaultdict(set)
        for k, accs in shared.items():
            for acc in accs:
                types_of[acc].add(key_type[k])
        members = {acc for acc, t in types_of.items() if len(t) >= self.min_shared_types}
        # union-find: members joined through the shared keys they have in common
        parent = {m: m for m in members}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for k in sorted(shared):
            linked = sorted(shared[k] & members)
            for a in linked[1:]:
                ra, rb = find(linked[0]), find(a)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        groups: dict[str, set[str]] = defaultdict(set)
        for m in members:
            groups[find(m)].add(m)
        out: list[Finding] = []
        for root in sorted(groups):
            group = groups[root]
            if len(group) < self.min_accounts:
                continue
            score = sum(summaries[a].extraction_score for a in group) / len(group)
            if score < self.min_score:
                continue
            keys = {k for k, accs in shared.items() if accs & group}
            out += self._hit(start, end, group, keys, key_type, score, summaries)
        out += self._resolve_due(end)
        return out

    def _hit(self, start: int, end: int, group: set[str], keys: set[str],
             key_type: dict[str, str], score: float,
             summaries: dict[str, AccountSummary]) -> list[Finding]:
        known = sorted({self._cluster_of_key[k] for k in keys if k in self._cluster_of_key
                        and self._cluster_of_key[k] in self._clusters})
        if known:
            cluster = self._clusters[known[0]]
        else:
            cid = "cluster-" + hashlib.sha256("|".join(sorted(keys)).encode()).hexdigest()[:12]
            cluster = _Cluster(cid, alert_id_for(RULE, (cid,), start), start)
            self._clusters[cid] = cluster
        grew = not group <= cluster.members
        cluster.members |= group
        cluster.keys |= keys
        for k in keys:
            self._cluster_of_key[k] = cluster.cluster_id
        first = cluster.last_hit_end_ts == 0
        cluster.last_hit_end_ts = end
        cluster.peak_score = max(cluster.peak_score, score)
        if not (first or grew):
            return []
        return [self._finding(cluster, "firing", end, score, key_type, summaries)]

    def _finding(self, c: _Cluster, status: str, end: int, score: float,
                 key_type: dict[str, str], summaries: dict[str, AccountSummary]) -> Finding:
        shared_types = sorted({key_type.get(k, k.split(":")[0]) for k in c.keys})
        reqs = sum(summaries[a].requests for a in c.members if a in summaries)
        evidence: dict[str, Any] = {
            "cluster_id": c.cluster_id, "accounts": len(c.members), "shared_key_types": shared_types,
            "shared_keys": len(c.keys), "mean_extraction_score": round(score, 4),
            "requests_in_window": reqs,
        }
        summary = (f"{len(c.members)} accounts act as one: they share "
                   f"{', '.join(shared_types)} and together look like extraction "
                   f"(mean extraction score {score:.2f}), each staying modest on its own.")
        if status == "resolved":
            summary = f"Resolved after {self.cooldown_windows} quiet windows: {summary}"
        return Finding(status, c.alert_id, RULE, "critical", tuple(sorted(c.members)),
                       float(score if status == "firing" else c.peak_score),
                       self.min_score, c.first_start_ts, end, summary, evidence)

    def _resolve_due(self, now_end: int) -> list[Finding]:
        out = []
        limit = self.cooldown_windows * self.window_ms
        for cid in sorted(self._clusters):
            c = self._clusters[cid]
            if now_end - c.last_hit_end_ts >= limit:
                del self._clusters[cid]
                for k in c.keys:
                    if self._cluster_of_key.get(k) == cid:
                        del self._cluster_of_key[k]
                out.append(self._finding(c, "resolved", c.last_hit_end_ts, c.peak_score, {}, {}))
        return out

    # -- plain-data snapshots -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": {str(k): [s.to_dict() for s in v.values()] for k, v in self._windows.items()},
            "latest_end": self._latest_end,
            "clusters": [{"cluster_id": c.cluster_id, "alert_id": c.alert_id,
                          "first_start_ts": c.first_start_ts, "members": sorted(c.members),
                          "keys": sorted(c.keys), "last_hit_end_ts": c.last_hit_end_ts,
                          "peak_score": c.peak_score} for c in self._clusters.values()],
            "cluster_of_key": dict(self._cluster_of_key),
        }

    def load_dict(self, d: dict[str, Any]) -> None:
        self._windows = {int(k): {s["account_id"]: AccountSummary.from_dict(s) for s in v}
                         for k, v in d["windows"].items()}
        self._latest_end = int(d["latest_end"])
        self._clusters = {}
        for c in d["clusters"]:
            self._clusters[c["cluster_id"]] = _Cluster(
                c["cluster_id"], c["alert_id"], int(c["first_start_ts"]), set(c["members"]),
                set(c["keys"]), int(c["last_hit_end_ts"]), float(c["peak_score"]))
        self._cluster_of_key = dict(d["cluster_of_key"])
