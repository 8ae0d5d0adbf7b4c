"""Population outliers: one River ``HalfSpaceTrees`` per partition over per-account windows.

Features are scaled into [0, 1] by fixed transforms (so a replay scores exactly like the
live run) and only accounts with enough requests in the window are scored. An anomaly
only pages when its most unusual features lean towards extraction (higher near-duplicate,
chain-of-thought, reasoning or output share than the population): being merely big or
merely quiet is not suspicious. The trees' masses are saved as plain numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river.anomaly import HalfSpaceTrees

from models.detectors.base import Hit, WindowContext

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
    rule = "population_outlier"

    def __init__(self, threshold: float = 0.9, min_requests: int = 20, min_z: float = 3.0,
                 n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 42,
                 pop_alpha: float = 0.02) -> None:
        self.threshold = threshold
        self.min_requests = min_requests
        self.min_z = min_z
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.pop_alpha = pop_alpha
        self._model = self._new_model()
        self._pop_mean = np.zeros(len(SCALED))
        self._pop_var = np.full(len(SCALED), 0.01)
        self._seen = 0

    def _new_model(self) -> HalfSpaceTrees:
        return HalfSpaceTrees(n_trees=self.n_trees, height=self.height,
                              window_size=self.window_size, seed=self.seed,
                              limits={name: (0.0, 1.0) for name in SCALED})

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        rows = np.flatnonzero(f["requests"] >= self.min_requests)
        if len(rows) == 0:
            return []
        x = scaled_features({k: v[rows] for k, v in f.items()})
        std = np.sqrt(self._pop_var)
        z = (x - self._pop_mean) / np.maximum(std, 0.02)
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
            ev: dict[str, Any] = {
                "top_features": top,
                "values": {SCALED[j]: round(float(x[i, j]), 4) for j in order[:3]},
                "population_mean": {SCALED[j]: round(float(self._pop_mean[j]), 4) for j in order[:3]},
                "z_scores": {SCALED[j]: round(float(z[i, j]), 2) for j in order[:3]},
                "requests": int(f["requests"][row]),
            }
            hits.append(Hit(
                self.rule, "info", row, float(score), self.threshold,
                f"Account stands out from its peers (anomaly score {score:.2f}), mostly by "
                f"{', '.join(top)} above the population.", ev))
        self._seen += len(rows)
        # population moments after scoring: this window does not explain itself away
        a = self.pop_alpha
        for i in range(len(rows)):
            d = x[i] - self._pop_mean
            self._pop_mean = self._pop_mean + a * d
            self._pop_var = (1 - a) * (self._pop_var + a * d * d)
        return hits

    # -- plain-data snapshots ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        m = self._model
        masses = [[[n.l_mass, n.r_mass] for n in nodes] for nodes in m._tree_nodes]
        return {"counter": m.counter, "first_window": m._first_window, "masses": masses,
                "pop_mean": self._pop_mean.tolist(), "pop_var": self._pop_var.tolist(),
                "seen": self._seen}

    def load_dict(self, state: dict[str, Any]) -> None:
        m = self._new_model()
        if state["masses"]:
            m.learn_one(dict.fromkeys(SCALED, 0.5))   # builds the trees from the seed
            for nodes, saved in zip(m._tree_nodes, state["masses"], strict=True):
                for node, (lm, rm) in zip(nodes, saved, strict=True):
                    node.l_mass, node.r_mass = lm, rm
        m.counter = int(state["counter"])
        m._first_window = bool(state["first_window"])
        self._model = m
        self._pop_mean = np.asarray(state["pop_mean"], dtype=np.float64)
        self._pop_var = np.asarray(state["pop_var"], dtype=np.float64)
        self._seen = int(state["seen"])
