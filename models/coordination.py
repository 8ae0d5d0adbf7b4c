"""The population view: accounts acting as one ("hydra" clusters, slow swarms, hand-overs).

A campaign spread over hundreds of accounts keeps every account quiet; one run from accounts
used one after another never has two of them active at once. So this view is not gated on
per-account suspicion: each partition monitor sends an :class:`AccountSummary` for every
window of every *untrusted* account (no record, unverified or young), and for any window
that looks even mildly like extraction. Here every summary is folded into **trails**: for
each linking key, the accounts that showed it in the last ``trail_ms`` (two hours).

Linking keys (:meth:`AccountSummary.link_keys`):

* a payment fingerprint, which links on its own;
* pairs of weaker keys of different kinds, which link only together: a /24 network; a
  client (user agent on an ASN); a prompt template (two of the four 16-bit bands of the
  SimHash of a sampled prompt: near-duplicates keep most bands, and 32 bits do not
  collide by chance the way one band does); the creation cohort (the hour the account was created, and
  the same shifted by half an hour); the activity start (the 10 minutes in which the
  account first showed up, and shifted). Two weak signals link where one strong one is
  missing: residential proxies and browser user agents share no network, but a template
  band and a creation hour they do share.

A key held by ``min_accounts`` accounts or more is *hot*; accounts held by hot keys of two
kinds or more (or by a hot payment fingerprint) are joined through them into components. A component of ``min_accounts`` or more whose members look like
extraction on average (each member's larger of its window score and its extraction-like
share over hours, ``min_score``) is a cluster: one ``coordinated_accounts`` alert,
``critical`` (many accounts are their own corroboration), naming every member. A cluster
that grows is sent again with the same ``alert_id`` (when it has grown by a tenth); clusters
keep their identity and never merge; after ``cooldown_windows`` windows without being seen
again it is resolved.

Per-account findings on untrusted accounts reach the alert topic through this view, as
soon as they arrive (:meth:`add`): a cluster member's own finding is folded into its
cluster's alert (one incident, one alert), an account with a finding that shares a key
with two of a cluster's members joins it, and any other finding is passed on unchanged.

>>> det = CoordinationDetector(window_ms=60_000, min_accounts=3)
>>> for i in range(4):
...     _ = det.add(AccountSummary(f"h{i}", 0, 60_000, requests=5, extraction_score=0.8,
...                                template_fp=0xABCD_0000_1234_0000 + i, net=7, ua=9, asn=3))
>>> det.add(AccountSummary("honest", 0, 60_000, requests=50, extraction_score=0.35,
...                        template_fp=0x1111, net=8, ua=9, asn=4))
[]
>>> [(f.rule, f.severity, f.account_ids) for f in det.flush()]
[('coordinated_accounts', 'critical', ('h0', 'h1', 'h2', 'h3'))]
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import combinations
from typing import Any

from models.incidents import Finding, alert_id_for

__all__ = ["AccountSummary", "CoordinationDetector", "SummaryBatch"]

RULE = "coordinated_accounts"
_WHEN = frozenset({"born", "start"})
_HOUR = 3_600_000
_TEN_MIN = 600_000


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """One account's window, reduced to what the population view needs (plain data)."""

    account_id: str
    window_start_ts: int
    window_end_ts: int
    requests: int
    extraction_score: float
    template_fp: int = 0          # a sampled prompt fingerprint (0: none)
    net: int = 0                  # smallest network hash seen (0: none)
    ua: int = 0
    asn: int = 0
    first_seen_ts: int = 0
    windows_seen: int = 0
    payment_fp: str | None = None
    created_ts: int | None = None
    xlike: float = 0.0            # extraction-like share over the account's recent hours
    active_from_ts: int = 0       # first seen, when that is a real start (0: unknown)
    findings: tuple[dict[str, Any], ...] = ()   # the account's own findings, routed here
    more_fps: tuple[int, ...] = ()   # further sampled prompt fingerprints (other templates)

    @property
    def score(self) -> float:
        return max(self.extraction_score, self.xlike)

    def link_keys(self) -> list[str]:
        """Keys this account-window can share with others: payment alone, the rest in pairs."""
        weak: list[tuple[str, str]] = []
        if self.net:
            weak.append(("net", f"net:{self.net}"))
        if self.ua:
            weak.append(("client", f"ua:{self.ua}:{self.asn}"))
        for fp in sorted({self.template_fp, *self.more_fps} - {0}):
            bands = [(fp >> (16 * j)) & 0xFFFF for j in range(4)]
            weak += [("tpl", f"tpl{i}{j}:{bands[i]}.{bands[j]}") for i, j in combinations(range(4), 2)]
        if self.created_ts:
            c = self.created_ts
            weak += [("born", f"born:{c // _HOUR}"), ("born", f"born+:{(c + _HOUR // 2) // _HOUR}")]
        if self.active_from_ts:
            a = self.active_from_ts
            weak += [("start", f"start:{a // _TEN_MIN}"),
                     ("start", f"start+:{(a + _TEN_MIN // 2) // _TEN_MIN}")]
        # timing alone (created in the same hour AND started in the same ten minutes) is a
        # coincidence two unrelated operations can share: a pair needs something they did
        out = [f"{k1}&{k2}" for (t1, k1), (t2, k2) in combinations(weak, 2)
               if t1 != t2 and not (t1 in _WHEN and t2 in _WHEN)]
        if self.payment_fp:
            out.append(f"pay:{self.payment_fp}")
        return out

    def with_account(self, payment_fp: str | None, created_ts: int | None) -> AccountSummary:
        """The summary enriched with what the account stream says."""
        return replace(self, payment_fp=payment_fp, created_ts=created_ts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = list(self.findings)
        d["more_fps"] = list(self.more_fps)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccountSummary:
        return cls(**{**d, "findings": tuple(d.get("findings") or ()),
                      "more_fps": tuple(d.get("more_fps") or ())})


#: The per-account columns of a :class:`SummaryBatch` (every summary field but the window).
SUMMARY_COLUMNS = tuple(f.name for f in fields(AccountSummary)
                        if f.name not in ("window_start_ts", "window_end_ts"))


@dataclass(frozen=True, slots=True)
class SummaryBatch:
    """The summaries of one closed window of one partition, as columns of plain values:
    one message on the summaries topic instead of one per account.

    >>> b = SummaryBatch(0, 60_000, {"account_id": ["a", "b"], "requests": [3, 0],
    ...                              "extraction_score": [0.5, 0.0], "more_fps": [[7], []]})
    >>> [(s.account_id, s.requests, s.more_fps) for s in b.rows()]
    [('a', 3, (7,)), ('b', 0, ())]
    >>> SummaryBatch.from_dict(b.to_dict()) == b
    True
    """

    window_start_ts: int
    window_end_ts: int
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.columns["account_id"])

    def row(self, i: int) -> AccountSummary:
        cols = self.columns
        row = {k: cols[k][i] for k in SUMMARY_COLUMNS if k in cols}
        if "more_fps" in row:
            row["more_fps"] = tuple(row["more_fps"] or ())
        if "findings" in row:
            row["findings"] = tuple(row["findings"] or ())
        return AccountSummary(window_start_ts=self.window_start_ts,
                              window_end_ts=self.window_end_ts, **row)

    def rows(self) -> Iterator[AccountSummary]:
        return (self.row(i) for i in range(len(self)))

    def with_accounts(self, lookup: Callable[[str], Any]) -> SummaryBatch:
        """The batch with each account's payment fingerprint and creation time filled in
        from the account stream (``lookup``: account id -> record or None)."""
        recs = [lookup(a) for a in self.columns["account_id"]]
        return replace(self, columns={
            **self.columns,
            "payment_fp": [None if r is None else r.payment_fp for r in recs],
            "created_ts": [None if r is None else r.created_ts for r in recs]})

    def to_dict(self) -> dict[str, Any]:
        return {"batch": 1, "window_start_ts": self.window_start_ts,
                "window_end_ts": self.window_end_ts, "columns": self.columns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SummaryBatch:
        cols = {k: list(v) for k, v in d["columns"].items() if k in SUMMARY_COLUMNS}
        return cls(int(d["window_start_ts"]), int(d["window_end_ts"]), cols)


@dataclass(slots=True)
class _Cluster:
    cluster_id: str
    alert_id: str
    first_start_ts: int
    members: set[str] = field(default_factory=set)
    last_hit_end_ts: int = 0
    peak_score: float = 0.0
    sent_members: int = 0
    kinds: set[str] = field(default_factory=set)
    absorbed: int = 0             # members' own findings folded in


class CoordinationDetector:
    def __init__(self, window_ms: int, min_accounts: int = 5, min_score: float = 0.45,
                 cooldown_windows: int = 10, close_after_windows: int = 2,
                 trail_ms: int = 2 * _HOUR, max_holders: int = 4096) -> None:
        if min_accounts < 2:
            raise ValueError("min_accounts must be >= 2")
        self.window_ms = window_ms
        self.min_accounts = min_accounts
        self.min_score = min_score
        self.cooldown_windows = cooldown_windows
        self.close_after_windows = close_after_windows
        self.trail_ms = trail_ms
        self.max_holders = max_holders
        self._keys_of: dict[str, list[str]] = {}           # account -> its latest link keys
        self._recent: dict[str, _Cluster] = {}             # resolved within the trail
        self._recent_of: dict[str, str] = {}               # account -> recent cluster id
        self._windows: dict[int, dict[str, AccountSummary]] = {}
        self._latest_end = -1
        self._holders: dict[str, dict[str, int]] = {}      # key -> account -> last end seen
        self._score: dict[str, tuple[float, int]] = {}     # account -> (score, last end)
        self._clusters: dict[str, _Cluster] = {}
        self._cluster_of: dict[str, str] = {}              # account -> cluster id
        self._absorbed: set[str] = set()                   # alert ids folded into clusters

    @property
    def open_windows(self) -> list[int]:
        """Start times of the windows that still take summaries."""
        return sorted(self._windows)

    def add(self, s: AccountSummary) -> list[Finding]:
        """Take one summary; the findings it carried that pass on to the alert topic now."""
        if s.requests > 0:
            self._windows.setdefault(s.window_start_ts, {})[s.account_id] = s
            self._keys_of[s.account_id] = s.link_keys()
        self._latest_end = max(self._latest_end, s.window_end_ts)
        if not s.findings:
            return []
        return self._route([Finding.from_dict(f) for f in s.findings], s.window_end_ts)

    def close_ready(self) -> list[Finding]:
        """Close windows that summaries from later windows show to be complete."""
        limit = self._latest_end - self.close_after_windows * self.window_ms
        out: list[Finding] = []
        for start in self.open_windows:
            if start + self.window_ms > limit:
                break
            out += self._close(start)
        return out

    def flush(self) -> list[Finding]:
        out: list[Finding] = []
        for start in self.open_windows:
            out += self._close(start)
        for cid in sorted(self._clusters):        # the end of input: name whoever joined since
            c = self._clusters[cid]
            if len(c.members) > c.sent_members:
                c.sent_members = len(c.members)
                out.append(self._finding(c, "firing", c.last_hit_end_ts, c.peak_score))
        return out

    # -- one window -------------------------------------------------------------------
    def _close(self, start: int) -> list[Finding]:
        summaries = self._windows.pop(start, {})
        end = start + self.window_ms
        touched: set[str] = set()
        for acc in sorted(summaries):
            s = summaries[acc]
            self._score[acc] = (s.score, end)
            cid = self._cluster_of.get(acc)
            if cid is not None and s.score >= self.min_score:   # members still at it
                self._clusters[cid].last_hit_end_ts = end
            keys = s.link_keys()
            self._keys_of[acc] = keys
            for k in keys:
                holders = self._holders.setdefault(k, {})
                if acc in holders or len(holders) < self.max_holders:
                    holders[acc] = end
                    touched.add(k)
        if start // self.window_ms % 10 == 0:
            self._expire(end)
        out = self._clusters_in(sorted(touched), start, end)
        out += self._resolve_due(end)
        return out

    def _expire(self, end: int) -> None:
        horizon = end - self.trail_ms
        for k in list(self._holders):
            holders = self._holders[k]
            for a in [a for a, t in holders.items() if t <= horizon]:
                del holders[a]
            if not holders:
                del self._holders[k]
        for cid in [c for c, cl in self._recent.items() if cl.last_hit_end_ts <= horizon]:
            for a in self._recent.pop(cid).members:
                if self._recent_of.get(a) == cid:
                    del self._recent_of[a]
        for a in [a for a, (_, t) in self._score.items() if t <= horizon and a not in self._cluster_of]:
            del self._score[a]
            self._keys_of.pop(a, None)

    def _clusters_in(self, touched: list[str], start: int, end: int) -> list[Finding]:
        horizon = end - self.trail_ms
        hot = []
        for k in touched:
            live = sorted(a for a, t in self._holders[k].items() if t > horizon)
            if len(live) >= self.min_accounts:
                hot.append((k, live))
        if not hot:
            return []
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        # a member is held by hot keys of two kinds or more (weak links combine), or by a
        # payment fingerprint; one shared pair of keys alone (a 16-bit template band can
        # collide by chance) does not make an account a member
        links: dict[str, set[str]] = defaultdict(set)    # kinds of hot keys, per account
        for k, live in hot:
            kind = _kind(k)
            for a in live:
                links[a].add(kind)
        member = {a for a, kinds in links.items() if len(kinds) >= 2 or "payment" in kinds}
        kinds_of: dict[str, set[str]] = defaultdict(set)
        for k, live in hot:
            live = [a for a in live if a in member]
            if len(live) < 2:
                continue
            root = find(live[0])
            for a in live[1:]:
                ra = find(a)
                if ra != root:
                    lo, hi = sorted((root, ra))
                    parent[hi] = lo
                    root = lo
            kinds_of[live[0]].add(_kind(k))
        groups: dict[str, set[str]] = defaultdict(set)
        for a in list(parent):
            groups[find(a)].add(a)
        kinds_by_root: dict[str, set[str]] = defaultdict(set)
        for a, kinds in kinds_of.items():
            kinds_by_root[find(a)] |= kinds
        out: list[Finding] = []
        for root in sorted(groups):
            group = groups[root]
            if len(group) < self.min_accounts:
                continue
            score = sum(self._score.get(a, (0.0, 0))[0] for a in group) / len(group)
            if score < self.min_score:
                continue
            out += self._hit(start, end, group, kinds_by_root[root], score)
        return out

    def _hit(self, start: int, end: int, group: set[str], kinds: set[str], score: float) -> list[Finding]:
        known = sorted({self._cluster_of[a] for a in group if a in self._cluster_of},
                       key=lambda c: (self._clusters[c].first_start_ts, c))
        revived = sorted({self._recent_of[a] for a in group if a in self._recent_of
                          and self._recent_of[a] in self._recent})
        if known:
            cluster = self._clusters[known[0]]
            new = {a for a in group if a not in self._cluster_of}
        elif revived:       # the same operation back after a pause: the same incident
            cluster = self._recent.pop(revived[0])
            self._clusters[cluster.cluster_id] = cluster
            for a in cluster.members:
                self._cluster_of.setdefault(a, cluster.cluster_id)
            cluster.sent_members = 0            # re-opened: sent again, same alert id
            new = {a for a in group if a not in self._cluster_of}
        else:
            cid = "cluster-" + hashlib.sha256(
                f"{start}|{'|'.join(sorted(group))}".encode()).hexdigest()[:12]
            cluster = _Cluster(cid, alert_id_for(RULE, (cid,), start), start)
            self._clusters[cid] = cluster
            new = set(group)
        cluster.members |= new
        for a in new:
            self._cluster_of[a] = cluster.cluster_id
        cluster.kinds |= kinds
        cluster.last_hit_end_ts = end
        cluster.peak_score = max(cluster.peak_score, score)
        n = len(cluster.members)
        if cluster.sent_members and n < max(cluster.sent_members + 5, cluster.sent_members * 1.1):
            return []
        cluster.sent_members = n
        return [self._finding(cluster, "firing", end, score)]

    def _route(self, routed: list[Finding], end: int) -> list[Finding]:
        """Members' own findings are folded into their cluster; the rest pass on."""
        out = []
        for f in routed:
            cid = self._cluster_of.get(f.account_ids[0]) if len(f.account_ids) == 1 else None
            if f.status == "firing" and cid is None and len(f.account_ids) == 1:
                cid = self._adopt(f.account_ids[0], end)
            if f.status == "firing" and cid is not None:
                self._absorbed.add(f.alert_id)
                self._clusters[cid].absorbed += 1
                continue
            if f.status == "resolved" and f.alert_id in self._absorbed:
                self._absorbed.discard(f.alert_id)
                continue
            out.append(f)
        return out

    def _adopt(self, account: str, end: int) -> str | None:
        """Weak signals combine: an account with a finding of its own (one signal) that shares
        a linking key held by two members or more of a cluster (another) joins that cluster
        (the oldest, if several)."""
        horizon = end - self.trail_ms
        kinds: dict[str, set[str]] = {}
        for k in self._keys_of.get(account, ()):
            in_cluster: dict[str, int] = defaultdict(int)
            for a, t in self._holders.get(k, {}).items():
                if t > horizon and a in self._cluster_of:
                    in_cluster[self._cluster_of[a]] += 1
            for cid, n in in_cluster.items():
                if n >= 2:          # a key the cluster's members really share
                    kinds.setdefault(cid, set()).add(_kind(k))
        found = {c: len(ks) for c, ks in kinds.items() if ks}
        if not found:
            return None
        cid = min(found, key=lambda c: (self._clusters[c].first_start_ts, c))
        self._clusters[cid].members.add(account)
        self._cluster_of[account] = cid
        return cid

    def _finding(self, c: _Cluster, status: str, end: int, score: float) -> Finding:
        kinds = sorted(c.kinds)
        evidence: dict[str, Any] = {
            "cluster_id": c.cluster_id, "accounts": len(c.members), "linked_by": kinds,
            "mean_extraction_score": round(score, 4), "member_findings_folded_in": c.absorbed,
            "anomaly_analyses": [{"baseline": "population (untrusted accounts, last 2 h)",
                                  "feature": "accounts sharing linking keys",
                                  "value": len(c.members), "limit": self.min_accounts}],
        }
        summary = (f"{len(c.members)} young or unverified accounts act as one: linked by "
                   f"{', '.join(kinds)} over the last hours, and together they look like "
                   f"extraction (mean score {score:.2f}), each staying modest on its own.")
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
                if len(c.members) > c.sent_members:     # adopted members not yet named
                    c.sent_members = len(c.members)
                    out.append(self._finding(c, "firing", c.last_hit_end_ts, c.peak_score))
                del self._clusters[cid]
                for a in c.members:
                    if self._cluster_of.get(a) == cid:
                        del self._cluster_of[a]
                    self._recent_of[a] = cid
                self._recent[cid] = c
                out.append(self._finding(c, "resolved", c.last_hit_end_ts, c.peak_score))
        return out

    # -- plain-data snapshots -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 2,
            "windows": {str(k): [s.to_dict() for s in v.values()] for k, v in self._windows.items()},
            "latest_end": self._latest_end,
            "holders": {k: dict(v) for k, v in self._holders.items()},
            "score": {a: list(v) for a, v in self._score.items()},
            "clusters": [_cluster_dict(c) for c in self._clusters.values()],
            "absorbed": sorted(self._absorbed),
            "keys_of": {a: list(v) for a, v in self._keys_of.items()},
            "recent": [_cluster_dict(c) for c in self._recent.values()],
        }

    def load_dict(self, d: dict[str, Any]) -> None:
        if d.get("v") != 2:     # the per-window view of v1 kept nothing worth carrying over
            return
        self._windows = {int(k): {s["account_id"]: AccountSummary.from_dict(s) for s in v}
                         for k, v in d["windows"].items()}
        self._latest_end = int(d["latest_end"])
        self._holders = {k: {a: int(t) for a, t in v.items()} for k, v in d["holders"].items()}
        self._score = {a: (float(v[0]), int(v[1])) for a, v in d["score"].items()}
        self._clusters = {c["cluster_id"]: _cluster_from_dict(c) for c in d["clusters"]}
        self._cluster_of = {a: cid for cid, c in self._clusters.items() for a in c.members}
        self._recent = {c["cluster_id"]: _cluster_from_dict(c) for c in d.get("recent", [])}
        self._recent_of = {a: cid for cid, c in self._recent.items() for a in c.members}
        self._absorbed = set(d["absorbed"])
        self._keys_of = {a: list(v) for a, v in d.get("keys_of", {}).items()}


def _cluster_dict(c: _Cluster) -> dict[str, Any]:
    return {"cluster_id": c.cluster_id, "alert_id": c.alert_id, "first_start_ts": c.first_start_ts,
            "members": sorted(c.members), "last_hit_end_ts": c.last_hit_end_ts,
            "peak_score": c.peak_score, "sent_members": c.sent_members, "kinds": sorted(c.kinds),
            "absorbed": c.absorbed}


def _cluster_from_dict(c: dict[str, Any]) -> _Cluster:
    return _Cluster(c["cluster_id"], c["alert_id"], int(c["first_start_ts"]), set(c["members"]),
                    int(c["last_hit_end_ts"]), float(c["peak_score"]), int(c["sent_members"]),
                    set(c["kinds"]), int(c["absorbed"]))


def _kind(key: str) -> str:
    """``net:1&tpl01:2.3`` -> ``network+template``; ``pay:..`` -> ``payment``."""
    names = {"net": "network", "ua": "client", "born": "creation cohort",
             "born+": "creation cohort", "start": "activity start", "start+": "activity start",
             "pay": "payment"}
    def name(part: str) -> str:
        head = part.split(":")[0]
        return "template" if head.startswith("tpl") else names.get(head, head)
    return "+".join(sorted({name(part) for part in key.split("&")}))
