"""Population outliers: one River ``HalfSpaceTrees`` per partition over per-account windows,
explained against the account's peers.

Features are scaled into [0, 1] by fixed transforms (so a replay scores exactly like the
live run) and only accounts with enough requests in the window are scored. An anomaly
only pages when its most unusual features lean towards extraction (higher near-duplicate,
chain-of-thought, reasoning or output share) *compared with its peers*: accounts of the
same tier and age band (:mod:`models.peers`), whose feature means and variances are kept
per group. Until a group has ``min_peer_windows`` account-windows behind it, the whole
population stands in (and the evidence says so). Being merely big or merely quiet is not
suspicious, and neither is doing what one's peers do. The trees' masses and the moments
are saved as plain numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river.anomaly import HalfSpaceTrees

from models.detectors.base import Hit, WindowContext
from models.peers import PeerGroups, age_band

__all__ = ["PopulationOutlier", "scaled_features"]

SCALED = ("neardup_share", "cot_share", "reasoning_share", "output_heavy", "out_in",
          "share_429", "logprobs_share", "logit_bias_share", "key_fanout", "new_net_share")
SUSPICIOUS = ("neardup_share", "cot_share", "reasoning_share", "output_heavy", "out_in",
              "logprobs_share", "logit_bias_share", "key_fanout")


def scaled_features(f: dict[str, np.ndarray]) -> np.ndarray:
    """(rows, len(SCALED)) matrix in [0, 1]."""
    cols = [
        f["neardup_share"], f["cot_share"], f["reasoning_share"],
        np.log1p(f["completion_tokens_per_req"]) / np.log1p(20_000.0),
        np.log1p(f["out_in_ratio"]) / np.log1p(100.0),
        f["share_429"], f["logprobs_share"], f["logit_bias_share"],
        np.log1p(f["distinct_keys"]) / np.log1p(64.0), f["new_net_share"],
    ]
    return np.clip(np.column_stack(cols), 0.0, 1.0)


class PopulationOutlier:
    """HalfSpaceTrees anomaly score, gated by z-scores against the account's peer group.

    Parameters
    ----------
    threshold
        HalfSpaceTrees score (0..1) an account-window must reach.
    min_requests
        Account-windows with fewer requests are neither scored nor learnt from.
    min_z
        The top deviation from the peers (or the population, see above) must reach this.
    pop_alpha
        Weight of one account-window in the exponentially weighted moments (population and
        peer groups alike; a group's first ``1 / pop_alpha`` windows are weighted equally).
    min_peer_windows
        Account-windows a peer group needs before it replaces the population as baseline.

    Examples
    --------
    >>> po = PopulationOutlier()
    >>> sorted(k for k in po.to_dict() if k.startswith(("peer_", "pop_")))
    ['peer_mean', 'peer_n', 'peer_var', 'pop_mean', 'pop_var']
    >>> PopulationOutlier(min_peer_windows=0)
    Traceback (most recent call last):
    ...
    ValueError: min_peer_windows must be >= 1
    """

    rule = "population_outlier"

    def __init__(self, threshold: float = 0.9, min_requests: int = 20, min_z: float = 3.0,
                 n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 42,
                 pop_alpha: float = 0.02, min_peer_windows: int = 20) -> None:
        if not 0.0 < pop_alpha <= 1.0:
            raise ValueError("pop_alpha must be in (0, 1]")
        if min_peer_windows < 1:
            raise ValueError("min_peer_windows must be >= 1")
        self.threshold = threshold
        self.min_requests = min_requests
        self.min_z = min_z
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.pop_alpha = pop_alpha
        self.min_peer_windows = min_peer_windows
        self._reset()

    def _reset(self) -> None:
        k = len(SCALED)
        self._model = self._new_model()
        self._pop_mean = np.zeros(k)
        self._pop_var = np.full(k, 0.01)
        self._seen = 0
        self._peer_n = np.zeros(0, dtype=np.int64)        # account-windows per peer group
        self._peer_mean = np.zeros((0, k))
        self._peer_var = np.zeros((0, k))

    def _new_model(self) -> HalfSpaceTrees:
        return HalfSpaceTrees(n_trees=self.n_trees, height=self.height,
                              window_size=self.window_size, seed=self.seed,
                              limits={name: (0.0, 1.0) for name in SCALED})

    def _grow(self, n_groups: int) -> None:
        pad = n_groups - len(self._peer_n)
        if pad > 0:
            k = len(SCALED)
            self._peer_n = np.concatenate([self._peer_n, np.zeros(pad, dtype=np.int64)])
            self._peer_mean = np.concatenate([self._peer_mean, np.zeros((pad, k))])
            self._peer_var = np.concatenate([self._peer_var, np.zeros((pad, k))])

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        rows = np.flatnonzero(f["requests"] >= self.min_requests)
        if len(rows) == 0:
            return []
        x = scaled_features({k: v[rows] for k, v in f.items()})
        if ctx.peer_group is None:        # no peer information: tier unknown, age as seen
            groups, peers = age_band(ctx.age_ms[rows]), _NO_TIERS
        else:
            groups, peers = ctx.peer_group[rows].astype(np.int64), ctx.peers or _NO_TIERS
        self._grow(int(groups.max()) + 1)
        peer_n = self._peer_n[groups]
        fallback = peer_n < self.min_peer_windows
        ref_mean = np.where(fallback[:, None], self._pop_mean, self._peer_mean[groups])
        ref_var = np.where(fallback[:, None], self._pop_var, self._peer_var[groups])
        z = (x - ref_mean) / np.maximum(np.sqrt(ref_var), 0.02)
        hits = []
        model = self._model
        warm = self._seen >= self.window_size
        for i, row in enumerate(rows.tolist()):
            vec = dict(zip(SCALED, x[i].tolist(), strict=True))
            score = model.score_one(vec) if warm else 0.0
            model.learn_one(vec)
            if score < self.threshold:
                continue
            order = np.argsort(-z[i])
            top = [SCALED[j] for j in order[:3] if z[i, j] > 0]
            if not top or top[0] not in SUSPICIOUS or z[i, order[0]] < self.min_z:
                continue
            hits.append(self._hit(ctx, i, row, float(score), top, order[:3], x, z,
                                  peers.label(int(groups[i])), int(groups[i]), bool(fallback[i])))
        self._seen += len(rows)
        # moments after scoring: this window does not explain itself away
        for i, g in enumerate(groups.tolist()):
            self._pop_mean, self._pop_var = _ew_update(
                self._pop_mean, self._pop_var, self._seen - len(rows) + i, x[i], self.pop_alpha)
            self._peer_mean[g], self._peer_var[g] = _ew_update(
                self._peer_mean[g], self._peer_var[g], int(self._peer_n[g]), x[i], self.pop_alpha)
            self._peer_n[g] += 1
        return hits

    def _hit(self, ctx: WindowContext, i: int, row: int, score: float, top: list[str],
             order: np.ndarray, x: np.ndarray, z: np.ndarray, label: tuple[str, str],
             group: int, fallback: bool) -> Hit:
        tier, band = label
        n = int(self._peer_n[group])
        ev: dict[str, Any] = {
            "top_features": top,
            "values": {SCALED[j]: round(float(x[i, j]), 4) for j in order},
            "peer_group": {"tier": tier, "age_band": band},
            "peer_windows": n,
            "population_fallback": fallback,
            "peer_mean": ({SCALED[j]: round(float(self._peer_mean[group, j]), 4) for j in order}
                          if n else {}),
            "population_mean": {SCALED[j]: round(float(self._pop_mean[j]), 4) for j in order},
            "z_scores": {SCALED[j]: round(float(z[i, j]), 2) for j in order},
            "requests": int(ctx.features["requests"][row]),
        }
        against = (f"the whole population (its peers, {tier} accounts aged {band}, have "
                   f"{n} account-windows, fewer than {self.min_peer_windows})" if fallback
                   else f"its peers ({tier} accounts aged {band})")
        return Hit(self.rule, "info", row, score, self.threshold,
                   f"Account stands out (anomaly score {score:.2f}), mostly by "
                   f"{', '.join(top)} above {against}.", ev)

    # -- plain-data snapshots ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        m = self._model
        masses = [[[n.l_mass, n.r_mass] for n in nodes] for nodes in m._tree_nodes]
        return {"counter": m.counter, "first_window": m._first_window, "masses": masses,
                "pop_mean": self._pop_mean.tolist(), "pop_var": self._pop_var.tolist(),
                "seen": self._seen, "peer_n": self._peer_n.tolist(),
                "peer_mean": self._peer_mean.tolist(), "peer_var": self._peer_var.tolist()}

    def load_dict(self, state: dict[str, Any]) -> None:
        self._reset()
        m = self._model
        if state["masses"]:
            m.learn_one(dict.fromkeys(SCALED, 0.5))   # builds the trees from the seed
            for nodes, saved in zip(m._tree_nodes, state["masses"], strict=True):
                for node, (lm, rm) in zip(nodes, saved, strict=True):
                    node.l_mass, node.r_mass = lm, rm
        m.counter = int(state["counter"])
        m._first_window = bool(state["first_window"])
        self._pop_mean = np.asarray(state["pop_mean"], dtype=np.float64)
        self._pop_var = np.asarray(state["pop_var"], dtype=np.float64)
        self._seen = int(state["seen"])
        k = len(SCALED)       # snapshots from before peer groups have none: they start empty
        self._peer_n = np.asarray(state.get("peer_n", []), dtype=np.int64)
        self._peer_mean = np.asarray(state.get("peer_mean", []), dtype=np.float64).reshape(-1, k)
        self._peer_var = np.asarray(state.get("peer_var", []), dtype=np.float64).reshape(-1, k)


_NO_TIERS = PeerGroups()    # names groups of the "unknown" tier only; never assigns


def _ew_update(mean: np.ndarray, var: np.ndarray, n: int, x: np.ndarray,
               alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially weighted mean and variance after the ``n+1``-th value ``x``; the first
    ``1 / alpha`` values are weighted equally (plain running moments), so a new peer group
    does not start out pulled towards zero.

    >>> m, v = np.zeros(1), np.zeros(1)
    >>> for n, value in enumerate([1.0, 3.0]):
    ...     m, v = _ew_update(m, v, n, np.array([value]), alpha=0.1)
    >>> m.tolist(), v.tolist()
    ([2.0], [1.0])
    """
    a = max(alpha, 1.0 / (n + 1))
    d = x - mean
    return mean + a * d, (1 - a) * (var + a * d * d)
