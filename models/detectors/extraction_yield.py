"""Extraction yield: a young or unknown account pulling long, reasoning-rich answers for hours.

What a distiller wants is many long completions with their reasoning, and it does not need
templates to get them: a natural question bank looks as diverse as honest use. So this
rule reads the account's decayed history (:mod:`models.horizon`, half-life one hour), not
one window, and asks what the account *pulls*:

* at least ``min_requests`` requests behind it in the horizon (volume alone never fires);
* most answers long (``min_long_share``: long and at least 3x the prompt);
* a real share extraction-like (``min_xlike_share``: long, and asking for step-by-step
  reasoning or returning reasoning tokens);
* and a second sign that no honest interactive user shows at once: a chain-of-thought ask
  on a large share of requests (``min_cot_share``), or machine-like timing (the spread of
  log inter-arrival times under ``max_gap_spread``: a client on a timer, no pauses).

Only untrusted accounts (no record, unverified, or under 3 days old: see
:mod:`models.corroboration`) are judged; an established customer is judged against its
own history by :mod:`models.detectors.extraction_drift`. Both second signs together make
the finding ``critical``; one makes it ``warning``.

>>> import numpy as np
>>> from types import SimpleNamespace as Ctx
>>> f = {"h_requests": np.array([300.0, 300.0]), "long_share": np.array([0.9, 0.9]),
...      "xlike_share": np.array([0.8, 0.8]), "h_cot_share": np.array([0.6, 0.05]),
...      "gap_spread": np.array([0.3, 2.5]), "mean_gap_s": np.array([2.0, 9.0]),
...      "completion_tokens_per_req": np.array([2500.0, 2500.0]), "requests": np.array([30.0, 5.0])}
>>> ctx = Ctx(features=f, is_untrusted=lambda: np.array([True, True]))
>>> [(h.row, h.severity) for h in ExtractionYield().detect(ctx)]
[(0, 'critical')]
"""

from __future__ import annotations

import numpy as np

from models.detectors.base import Hit, WindowContext

__all__ = ["ExtractionYield"]


class ExtractionYield:
    rule = "extraction_yield"

    def __init__(self, min_requests: float = 30.0, min_long_share: float = 0.5,
                 min_xlike_share: float = 0.3, min_cot_share: float = 0.3,
                 max_gap_spread: float = 0.8) -> None:
        self.min_requests = min_requests
        self.min_long_share = min_long_share
        self.min_xlike_share = min_xlike_share
        self.min_cot_share = min_cot_share
        self.max_gap_spread = max_gap_spread

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        cot = f["h_cot_share"] >= self.min_cot_share
        machine = f["gap_spread"] <= self.max_gap_spread
        gate = (ctx.is_untrusted() & (f["h_requests"] >= self.min_requests)
                & (f["long_share"] >= self.min_long_share)
                & (f["xlike_share"] >= self.min_xlike_share) & (cot | machine))
        hits = []
        for row in np.flatnonzero(gate).tolist():
            signs = []
            if cot[row]:
                signs.append(f"{f['h_cot_share'][row]:.0%} ask for step-by-step reasoning")
            if machine[row]:
                signs.append(f"requests arrive like a timer (log-gap spread "
                             f"{f['gap_spread'][row]:.2f}, Poisson is 1.28; mean gap "
                             f"{f['mean_gap_s'][row]:.1f} s)")
            evidence = {
                "independent_signs": [x for x, on in (("cot_asks", cot[row]),
                                                      ("machine_timing", machine[row])) if on],
                "horizon_requests": round(float(f["h_requests"][row]), 1),
                "long_share": round(float(f["long_share"][row]), 4),
                "extraction_like_share": round(float(f["xlike_share"][row]), 4),
                "cot_share": round(float(f["h_cot_share"][row]), 4),
                "gap_spread": round(float(min(f["gap_spread"][row], 99.0)), 4),
                "completion_tokens_per_req": round(float(f["completion_tokens_per_req"][row]), 1),
                "anomaly_analyses": [
                    {"baseline": "untrusted-account policy", "feature": "long_share",
                     "value": round(float(f["long_share"][row]), 4), "limit": self.min_long_share},
                    {"baseline": "untrusted-account policy", "feature": "extraction_like_share",
                     "value": round(float(f["xlike_share"][row]), 4), "limit": self.min_xlike_share},
                    {"baseline": "Poisson arrivals (1.28)", "feature": "gap_spread",
                     "value": round(float(min(f["gap_spread"][row], 99.0)), 4),
                     "limit": self.max_gap_spread},
                ],
            }
            hits.append(Hit(
                self.rule, "critical" if cot[row] and machine[row] else "warning", row,
                float(f["xlike_share"][row]), self.min_xlike_share,
                f"A young or unverified account pulled {f['h_requests'][row]:.0f} requests over the "
                f"last hours, {f['long_share'][row]:.0%} long answers and "
                f"{f['xlike_share'][row]:.0%} long reasoning-rich ones; " + "; ".join(signs)
                + ": likely distillation.", evidence))
        return hits
