"""The per-partition monitor: ``step(batch) -> findings`` on event time.

One :class:`PartitionMonitor` owns everything about the accounts of one input partition:
their slots and baselines, the open tumbling windows, duplicate suppression, the detectors
and the open incidents. Processing is a pure function of the partition's event sequence:
whether events arrive in one batch or a thousand, the same windows close with the same
contents and the same alerts come out (which is what makes replays reproducible).

Event-time rules
----------------
* The watermark is the largest event time seen so far in the partition.
* An event is *late* when its window closed before it arrived, i.e. its window end plus
  the allowed lateness is at or before the watermark as it stood just before the event.
  Late events are returned to the shell (for the DLQ) and not counted.
* A window closes once the watermark passes its end plus the allowed lateness.

>>> cfg = MonitorConfig(window_ms=60_000, allowed_lateness_ms=10_000)
>>> m = PartitionMonitor(cfg)
>>> cols = RequestColumns.from_lists(account_ids=["a"] * 3, ts=[1_000, 2_000, 75_000])
>>> r = m.step(cols)
>>> r.counted, r.late.tolist(), m.watermark
(3, [], 75000)
>>> r = m.step(RequestColumns.from_lists(account_ids=["a"], ts=[5_000], dedup_key=[9]))
>>> r.late.tolist()                     # its window [0, 60s) closed when 70 s passed
[0]
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models.accounts import BASELINE_FEATURES, AccountTable
from models.batch import RequestColumns
from models.coordination import SummaryBatch
from models.corroboration import apply_policy, trust_of
from models.dedup import DedupIndex
from models.detectors.base import Detector, WindowContext
from models.detectors.drift import BehaviorDrift
from models.detectors.extraction_drift import ExtractionDrift
from models.detectors.extraction_yield import ExtractionYield
from models.detectors.population import PopulationOutlier
from models.detectors.rules import (
    CredentialCompromise,
    KeyRotation,
    LogitProbe,
    ModelPivot,
    TemplatedExtraction,
)
from models.features import window_features
from models.horizon import fold, horizon_features, request_flags
from models.incidents import Finding, IncidentTracker
from models.peers import PeerGroups, ProfileLookup
from models.sketches import bits_of
from models.templates import EMPTY
from models.timing import log_gaps
from models.windows import WindowAccumulator, WindowSummary

__all__ = ["SNAPSHOT_VERSION", "MonitorConfig", "PartitionMonitor", "Preview", "StepResult",
           "default_detectors"]

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    window_ms: int = 60_000
    allowed_lateness_ms: int = 30_000
    warmup_windows: int = 5
    cooldown_windows: int = 10
    dedup_horizon_ms: int = 600_000
    summary_min_score: float = 0.3   # account-windows at or above go to the cross-account view
    fresh_model_after_ms: int = 3_600_000   # a model first seen this long after the stream began
    fresh_model_for_ms: int = 86_400_000    # ... counts as newly released for this long
    # Findings on untrusted accounts travel with their summaries to the population view,
    # which folds a cluster member's own findings into the cluster's alert (the worker sets
    # this; without a population view, as in unit tests, findings come out of step()).
    newcomers_via_view: bool = False
    corroboration: bool = True     # the severity policy of models.corroboration (off: raw hits)
    population_start_grace_ms: int = 1_800_000   # first seen this soon after the stream began:
                                                 # no real "activity start" (it was already active)

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ValueError("window_ms must be positive")
        if self.allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        if self.dedup_horizon_ms < self.window_ms + self.allowed_lateness_ms:
            # a shorter horizon would forget ids of events that can still arrive on time,
            # and whether a re-sent one counts would depend on batch boundaries
            raise ValueError("dedup_horizon_ms must cover window_ms + allowed_lateness_ms")


@dataclass(slots=True)
class StepResult:
    findings: list[Finding]
    late: np.ndarray            # row indices of the batch that were too late (for the DLQ)
    duplicates: int = 0
    counted: int = 0


@dataclass(frozen=True, slots=True)
class Preview:
    """What :meth:`PartitionMonitor.preview` found: firing findings and the account
    summaries of the windows it closed on its scratch copy."""

    findings: list[Finding]
    summaries: list[SummaryBatch]


@dataclass(slots=True)
class MonitorCounters:
    events: int = 0             # counted into windows
    duplicates: int = 0
    late: int = 0
    windows_closed: int = 0
    alerts_firing: int = 0
    alerts_resolved: int = 0


def default_detectors(config: MonitorConfig) -> list[Detector]:
    return [
        TemplatedExtraction(),
        LogitProbe(),
        KeyRotation(),
        CredentialCompromise(),
        ModelPivot(),
        ExtractionYield(),
        ExtractionDrift(),
        BehaviorDrift(warmup_windows=config.warmup_windows),
        PopulationOutlier(),
    ]


@dataclass(slots=True)
class PartitionMonitor:
    config: MonitorConfig
    detectors: list[Detector] = field(default_factory=list)
    accounts: AccountTable = field(default_factory=AccountTable)
    watermark: int = -1
    counters: MonitorCounters = field(default_factory=MonitorCounters)
    dedup_rebuild_from: int | None = None   # after a restore: input offset to re-read from
    outbox: list[SummaryBatch] = field(default_factory=list)  # for the cross-account view
    stream_start_ts: int = -1
    model_first_seen: dict[int, int] = field(default_factory=dict)   # model hash -> event time
    profiles: ProfileLookup | None = None   # account id -> tier/created_ts (account stream)
    peers: PeerGroups = field(default_factory=PeerGroups)
    _windows: dict[int, WindowAccumulator] = field(default_factory=dict)
    _previewed: dict[str, int] = field(default_factory=dict)   # alert id -> its window end
    _routed: set[str] = field(default_factory=set)    # alert ids sent via the population view
    _incidents: IncidentTracker | None = None
    _dedup: DedupIndex | None = None

    def __post_init__(self) -> None:
        if not self.detectors:
            self.detectors = default_detectors(self.config)
        self._incidents = IncidentTracker(self.config.window_ms, self.config.cooldown_windows)
        self._dedup = DedupIndex(self.config.dedup_horizon_ms)

    @property
    def incidents(self) -> IncidentTracker:
        assert self._incidents is not None
        return self._incidents

    @property
    def dedup(self) -> DedupIndex:
        assert self._dedup is not None
        return self._dedup

    @property
    def open_windows(self) -> list[int]:
        return sorted(self._windows)

    # -- the step -----------------------------------------------------------------
    def step(self, cols: RequestColumns, offsets: np.ndarray | None = None) -> StepResult:
        """Fold one batch (in partition order) in; close the windows it completes.

        The batch is cut wherever the running watermark lets a window close, and windows
        close between the cuts, so every event sees exactly the history it would have seen
        had events arrived one at a time: results do not depend on batch boundaries.
        """
        cfg = self.config
        w, lateness = cfg.window_ms, cfg.allowed_lateness_ms
        ts = cols.ts
        n = len(ts)
        if n == 0:
            return StepResult([], np.zeros(0, dtype=np.int64))
        running = np.maximum.accumulate(np.maximum(ts, self.watermark))
        before = np.empty_like(running)
        before[0] = self.watermark
        before[1:] = running[:-1]
        late_mask = (ts // w + 1) * w + lateness <= before
        # closable frontier: windows starting at or before frontier*w may close
        frontier = (running - lateness - w) // w
        prev = (self.watermark - lateness - w) // w
        cuts = np.flatnonzero(np.diff(np.concatenate([[prev], frontier])) > 0)
        ends = np.append(cuts + 1, n) if (len(cuts) == 0 or cuts[-1] != n - 1) else cuts + 1
        findings: list[Finding] = []
        n_dup = counted = 0
        start = 0
        for end in ends.tolist():
            if end <= start:
                continue
            seg = slice(start, end)
            keep = ~late_mask[seg]
            if keep.any():
                idx = np.flatnonzero(keep) + start
                dup = self.dedup.check_and_add(
                    cols.dedup_key[idx], ts[idx], None if offsets is None else offsets[idx])
                idx = idx[~dup]
                n_dup += int(dup.sum())
                if len(idx):
                    self._accumulate(cols if len(idx) == n else cols.take(idx))
                    counted += len(idx)
            self.watermark = int(running[end - 1])
            findings.extend(self._close_due())
            start = end
        late = np.flatnonzero(late_mask)
        self.counters.duplicates += n_dup
        self.counters.late += len(late)
        self.counters.events += counted
        self.dedup.expire(self.watermark)
        return StepResult(findings, late, n_dup, counted)

    def _accumulate(self, b: RequestColumns) -> None:
        slots = self.accounts.slots_for(b.account_ids, b.ts)
        status = b.status
        net_bits, ua_bits = bits_of(b.net_hash), bits_of(b.ua_hash)
        key_bits, model_bits = bits_of(b.key_hash), bits_of(b.model_hash)
        asn_bits = bits_of(b.asn_hash)
        t = self.accounts
        sums = {
            "n": np.ones(len(b), dtype=np.int64),
            "prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
            "reasoning_tokens": b.reasoning_tokens,
            "n_ok": (status < 400), "n_429": status == 429,
            "n_error": (status >= 400) & (status != 429),
            "n_cot": b.cot, "n_logprobs": b.logprobs, "n_logit_bias": b.logit_bias,
            "n_fp": b.has_fp,
            "n_new_net": t.is_new("known_nets", slots, net_bits) & (b.net_hash != 0),
            "n_new_ua": t.is_new("known_uas", slots, ua_bits) & (b.ua_hash != 0),
            "n_new_key": t.is_new("known_keys", slots, key_bits),
            "n_new_model": t.is_new("known_models", slots, model_bits),
        }
        sums["n_fresh_model"] = self._fresh_model(b)
        sums["n_new_asn"] = t.is_new("known_asns", slots, asn_bits) & (b.asn_hash != 0)
        sums["n_long"], sums["n_xlike"] = request_flags(
            b.prompt_tokens, b.completion_tokens, b.reasoning_tokens, b.cot)
        sums["n_gap"], lg = log_gaps(slots, b.ts, t.last_event_ts)
        sums["gap_lg"], sums["gap_lg2"] = lg, lg * lg
        hashes = {"keys": b.key_hash, "nets": b.net_hash, "asns": b.asn_hash,
                  "uas": b.ua_hash, "models": b.model_hash,
                  "fps": np.where(b.has_fp, b.prompt_fp, np.uint64(0))}
        bits = {"keys": key_bits, "nets": net_bits, "uas": ua_bits, "models": model_bits,
                "asns": asn_bits}
        w = self.config.window_ms
        starts = b.ts // w * w
        first = int(starts[0])
        one_window = bool((starts == first).all())   # the usual case: no selection needed
        for start in [first] if one_window else np.unique(starts).tolist():
            acc = self._windows.get(start)
            if acc is None:
                acc = self._windows[start] = WindowAccumulator(start, start + w)
            if one_window:
                acc.add(slots, sums, hashes, b.ts, bits)
                fp_sel = b.has_fp
            else:
                sel = starts == start
                acc.add(slots[sel], {k: v[sel] for k, v in sums.items()},
                        {k: v[sel] for k, v in hashes.items()}, b.ts[sel],
                        {k: v[sel] for k, v in bits.items()})
                fp_sel = sel & b.has_fp
            if fp_sel.all():
                acc.add_fingerprints(slots, b.prompt_fp)
            elif fp_sel.any():
                acc.add_fingerprints(slots[fp_sel], b.prompt_fp[fp_sel])

    def _fresh_model(self, b: RequestColumns) -> np.ndarray:
        """True where the event's model was released (first seen) during observation."""
        cfg = self.config
        if self.stream_start_ts < 0:
            self.stream_start_ts = int(b.ts[0])
        first_seen = self.model_first_seen
        models, first_idx = np.unique(b.model_hash, return_index=True)
        released = np.empty(len(models), dtype=np.int64)
        for i, (m, j) in enumerate(zip(models.tolist(), first_idx.tolist(), strict=True)):
            released[i] = first_seen.setdefault(m, int(b.ts[j]))
        rel = released[np.searchsorted(models, b.model_hash)]
        return ((rel - self.stream_start_ts >= cfg.fresh_model_after_ms)
                & (b.ts - rel < cfg.fresh_model_for_ms))

    def _close_due(self) -> list[Finding]:
        findings: list[Finding] = []
        w = self.config.window_ms
        limit = self.watermark - self.config.allowed_lateness_ms
        for start in sorted(self._windows):
            if start + w > limit:
                break
            findings.extend(self._close(self._windows.pop(start)))
        # A previewed alert whose window has now really closed without firing it again
        # will never be repeated: forget it.
        for alert_id in [a for a, end in self._previewed.items() if end <= limit]:
            del self._previewed[alert_id]
        # Event time moved on even where no window of ours closed (an idle partition
        # advanced, a quiet account): incidents quiet long enough resolve all the same.
        resolved = self.incidents.resolve_due(limit // w * w)
        self.counters.alerts_resolved += len(resolved)
        return findings + self._route_resolved(resolved)

    def advance_to(self, watermark_ts: int) -> list[Finding]:
        """Move the watermark forward without events (idle partition, end of a replay)."""
        if watermark_ts > self.watermark:
            self.watermark = watermark_ts
        out = self._close_due()
        self.dedup.expire(self.watermark)
        return out

    def flush(self) -> list[Finding]:
        """Close every open window now (end of input)."""
        if not self._windows:
            return []
        last = max(self._windows) + self.config.window_ms + self.config.allowed_lateness_ms
        return self.advance_to(max(self.watermark, last))

    def preview(self, until_ts: int | None = None) -> Preview:
        """What closing the open windows now would fire, without closing them.

        For quiet input: alerts are not held back while nothing arrives, yet no event time
        is invented. The windows are closed on a scratch copy of this monitor (up to
        ``until_ts``, or all of them); this monitor keeps its watermark and open windows, so
        an event that arrives later is counted exactly as it would have been without the
        pause, and the final results do not depend on wall-clock pauses. Only ``firing``
        findings are previewed (a resolution waits for event time to really move on); when
        the real close fires one of them again, it is not repeated.
        """
        scratch = PartitionMonitor.from_dict(self.to_dict(), copy.deepcopy(self.detectors),
                                             self.profiles)
        closed = scratch.flush() if until_ts is None else scratch.advance_to(until_ts)
        fired = [f for f in closed if f.status == "firing" and f.alert_id not in self._previewed]
        for f in fired:
            self._previewed[f.alert_id] = f.window_end_ts
        summaries = scratch.drain_summaries()
        for batch in summaries:       # findings on their way through the population view
            for d in (d for row in batch.columns.get("findings", ()) for d in row):
                if d["status"] == "firing" and d["alert_id"] not in self._previewed:
                    self._previewed[d["alert_id"]] = int(d["window_end_ts"])
                    self._routed.add(d["alert_id"])
        return Preview(fired, summaries)

    def _close(self, acc: WindowAccumulator) -> list[Finding]:
        s = acc.close()
        self.counters.windows_closed += 1
        out: list[Finding] = []
        if len(s):
            out.extend(self._detect(s))
        out.extend(self._route_resolved(self.incidents.resolve_due(s.end_ts)))
        for f in out:
            if f.status == "firing":
                self.counters.alerts_firing += 1
            else:
                self.counters.alerts_resolved += 1
        return out

    def _detect(self, s: WindowSummary) -> list[Finding]:
        t = self.accounts
        feats = window_features(s)
        slots = s.slots
        ids, first_seen = t.ids_of(slots), t.first_seen_ts[slots]
        fold(t.horizon, t.horizon_end, slots, s.end_ts, s.counters)
        feats.update(horizon_features(t.horizon[slots]))
        trusted, untrusted = trust_of(self.profiles, ids, s.end_ts, first_seen)
        ctx = WindowContext(
            summary=s, features=feats, account_ids=ids,
            windows_seen=t.windows_seen[slots].copy(),
            age_ms=s.end_ts - first_seen,
            baseline_mean=t.ew_mean[slots].copy(),
            baseline_std=np.sqrt(t.ew_var[slots]),
            warmup_windows=self.config.warmup_windows,
            peer_group=self.peers.assign(ids, s.end_ts, first_seen, self.profiles),
            peers=self.peers, trusted=trusted, untrusted=untrusted,
        )
        hits = [h for d in self.detectors for h in d.detect(ctx)]
        if self.config.corroboration:
            hits = apply_policy(hits, trusted)
        findings = [
            Finding.hit(h.rule, h.severity, (ctx.account_ids[h.row],), h.score, h.threshold,
                        s.start_ts, s.end_ts, h.summary, h.evidence)
            for h in hits
        ]
        fired = self.incidents.observe(findings)
        if self._previewed:    # already sent by a preview of this window: not again
            fired = [f for f in fired if self._previewed.pop(f.alert_id, None) is None]
        routed: dict[str, list[Finding]] = {}
        if self.config.newcomers_via_view and fired:
            untrusted_ids = {ids[r] for r in np.flatnonzero(untrusted).tolist()}
            keep = []
            for f in fired:
                if len(f.account_ids) == 1 and f.account_ids[0] in untrusted_ids:
                    routed.setdefault(f.account_ids[0], []).append(f)
                    self._routed.add(f.alert_id)
                else:
                    keep.append(f)
            fired = keep
        self._summarise(s, feats, ctx, untrusted, routed)
        baseline = np.column_stack([feats[name] for name in BASELINE_FEATURES])
        t.observe_window(slots, s.end_ts, s.bitmaps, baseline)
        return fired

    def _summarise(self, s: WindowSummary, feats: dict[str, np.ndarray], ctx: WindowContext,
                   untrusted: np.ndarray, routed: dict[str, list[Finding]]) -> None:
        """Summaries for the population view: every untrusted account's window, and any
        window that looks even mildly like extraction."""
        rows = np.flatnonzero(((feats["extraction_score"] >= self.config.summary_min_score)
                               & (feats["requests"] >= 2)) | untrusted)
        if len(rows) == 0:
            return
        ids = ctx.account_ids
        accounts = [ids[r] for r in rows.tolist()]
        first_seen = self.accounts.first_seen_ts[s.slots[rows]]
        grace = self.stream_start_ts + self.config.population_start_grace_ms
        sample = s.fp_sample[rows, :3]
        sample = np.where(sample == EMPTY, np.uint64(0), sample)
        mins = [np.where(v == 0xFFFF_FFFF, 0, v).tolist()
                for v in (s.min_hashes[k][rows] for k in ("nets", "uas", "asns"))]
        self.outbox.append(SummaryBatch(s.start_ts, s.end_ts, {
            "account_id": accounts,
            "requests": feats["requests"][rows].astype(np.int64).tolist(),
            "extraction_score": np.round(feats["extraction_score"][rows], 4).tolist(),
            "template_fp": sample[:, 0].tolist(),
            "more_fps": sample[:, 1:].tolist(),          # 0: no further template (ignored)
            "net": mins[0], "ua": mins[1], "asn": mins[2],
            "first_seen_ts": first_seen.tolist(),
            "windows_seen": ctx.windows_seen[rows].tolist(),
            "xlike": np.round(feats["xlike_share"][rows], 4).tolist(),
            "active_from_ts": np.where(first_seen >= grace, first_seen, 0).tolist(),
            "findings": self._findings_column(accounts, routed),
        }))
        for acc, mine in routed.items():     # (every untrusted row has a summary; defensive)
            self.outbox.append(self._carrier(acc, s.start_ts, s.end_ts, mine))

    @staticmethod
    def _findings_column(accounts: list[str], routed: dict[str, list[Finding]]) -> list[list[dict[str, Any]]]:
        """Per row, the findings routed with it; ``routed`` keeps those of accounts not in rows."""
        column: list[list[dict[str, Any]]] = [[]] * len(accounts)     # shared empty lists, never mutated
        if routed:
            at = {a: i for i, a in enumerate(accounts)}
            for acc in [a for a in routed if a in at]:
                column[at[acc]] = [f.to_dict() for f in routed.pop(acc)]
        return column

    @staticmethod
    def _carrier(account: str, start: int, end: int, findings: list[Finding]) -> SummaryBatch:
        """A summary that only carries findings to the population view."""
        return SummaryBatch(start, end, {"account_id": [account], "requests": [0],
                                         "extraction_score": [0.0],
                                         "findings": [[f.to_dict() for f in findings]]})

    def _route_resolved(self, findings: list[Finding]) -> list[Finding]:
        """Resolutions of incidents that went out through the population view go the same way."""
        if not self._routed:
            return findings
        out = []
        for f in findings:
            if f.status == "resolved" and f.alert_id in self._routed:
                self._routed.discard(f.alert_id)
                self.outbox.append(self._carrier(f.account_ids[0], f.window_end_ts - self.config.window_ms,
                                                 f.window_end_ts, [f]))
            else:
                out.append(f)
        return out

    def drain_summaries(self) -> list[SummaryBatch]:
        out, self.outbox = self.outbox, []
        return out

    # -- plain-data snapshots -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SNAPSHOT_VERSION,
            "config": asdict(self.config),
            "watermark": self.watermark,
            "counters": asdict(self.counters),
            "accounts": self.accounts.to_dict(),
            "windows": [self._windows[k].to_dict() for k in sorted(self._windows)],
            "incidents": self.incidents.to_dict(),
            "detectors": {d.rule: d.to_dict() for d in self.detectors if hasattr(d, "to_dict")},
            "stream_start_ts": self.stream_start_ts,
            "model_first_seen": [[k, v] for k, v in sorted(self.model_first_seen.items())],
            "peer_groups": self.peers.to_dict(),
            "previewed": [[k, v] for k, v in sorted(self._previewed.items())],
            "routed": sorted(self._routed),
            "dedup_from_offset": (self.dedup.rebuild_from_offset()
                                  if self.dedup.rebuild_from_offset() is not None
                                  else self.dedup_rebuild_from),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], detectors: list[Detector] | None = None,
                  profiles: ProfileLookup | None = None) -> PartitionMonitor:
        version = d.get("schema_version")
        if version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported monitor snapshot version {version!r}")
        m = cls(MonitorConfig(**d["config"]), detectors or [], profiles=profiles)
        m.watermark = int(d["watermark"])
        m.counters = MonitorCounters(**d["counters"])
        m.accounts = AccountTable.from_dict(d["accounts"])
        for w in d["windows"]:
            acc = WindowAccumulator.from_dict(w)
            m._windows[acc.start_ts] = acc
        m.incidents.load_dict(d["incidents"])
        m.dedup_rebuild_from = d.get("dedup_from_offset")
        m.stream_start_ts = int(d["stream_start_ts"])
        m.model_first_seen = {int(k): int(v) for k, v in d["model_first_seen"]}
        if "peer_groups" in d:      # snapshots written before peer groups have none
            m.peers = PeerGroups.from_dict(d["peer_groups"])
        m._previewed = {str(k): int(v) for k, v in d.get("previewed", [])}
        m._routed = set(d.get("routed", []))
        for det in m.detectors:
            state = d["detectors"].get(det.rule)
            if state is not None and hasattr(det, "load_dict"):
                det.load_dict(state)
        return m
