"""Per-account window features: what the detectors look at, derived from a window summary.

Every feature is a plain float per account; ratios are guarded against empty denominators.

>>> import numpy as np
>>> from models.windows import WindowAccumulator
>>> acc = WindowAccumulator(0, 60_000)
>>> acc.add(np.array([0, 0]), {"n": np.ones(2), "prompt_tokens": np.array([100, 100]),
...         "completion_tokens": np.array([900, 700]), "n_cot": np.array([1, 0])}, {})
>>> f = window_features(acc.close())
>>> f["requests"].tolist(), f["out_in_ratio"].tolist(), f["cot_share"].tolist()
([2.0], [8.0], [0.5])
"""

from __future__ import annotations

import numpy as np

from models.sketches import estimate_distinct
from models.templates import neardup_share
from models.windows import WindowSummary

__all__ = ["FEATURES", "window_features"]

FEATURES = (
    "requests", "rate_per_min", "prompt_tokens_per_req", "completion_tokens_per_req",
    "out_in_ratio", "reasoning_share", "ok_share", "share_429", "error_share",
    "distinct_keys", "distinct_nets", "distinct_asns", "distinct_uas", "distinct_models",
    "fp_diversity", "neardup_share", "cot_share", "logprobs_share", "logit_bias_share",
    "new_net_share", "new_ua_share", "new_key_share", "new_model_share", "fresh_model_share",
    "new_asn_share", "long_answer_share", "extraction_like_share", "extraction_score",
)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def window_features(s: WindowSummary) -> dict[str, np.ndarray]:
    c = s.counters
    n = c["n"].astype(np.float64)
    minutes = max((s.end_ts - s.start_ts) / 60_000.0, 1e-9)
    n_fp = c["n_fp"]
    distinct_fp = estimate_distinct(s.bitmaps["fps"])
    out = {
        "requests": n,
        "rate_per_min": n / minutes,
        "prompt_tokens_per_req": _ratio(c["prompt_tokens"], c["n"]),
        "completion_tokens_per_req": _ratio(c["completion_tokens"], c["n"]),
        "out_in_ratio": _ratio(c["completion_tokens"], np.maximum(c["prompt_tokens"], 1)),
        "reasoning_share": _ratio(c["reasoning_tokens"], c["completion_tokens"]),
        "ok_share": _ratio(c["n_ok"], c["n"]),
        "share_429": _ratio(c["n_429"], c["n"]),
        "error_share": _ratio(c["n_error"], c["n"]),
        "distinct_keys": estimate_distinct(s.bitmaps["keys"]),
        "distinct_nets": estimate_distinct(s.bitmaps["nets"]),
        "distinct_asns": estimate_distinct(s.bitmaps["asns"]),
        "distinct_uas": estimate_distinct(s.bitmaps["uas"]),
        "distinct_models": estimate_distinct(s.bitmaps["models"]),
        "fp_diversity": np.where(n_fp > 0, np.minimum(_ratio(distinct_fp, n_fp), 1.0), 1.0),
        "neardup_share": neardup_share(s.fp_sample),
        "cot_share": _ratio(c["n_cot"], c["n"]),
        "logprobs_share": _ratio(c["n_logprobs"], c["n"]),
        "logit_bias_share": _ratio(c["n_logit_bias"], c["n"]),
        "new_net_share": _ratio(c["n_new_net"], c["n"]),
        "new_ua_share": _ratio(c["n_new_ua"], c["n"]),
        "new_key_share": _ratio(c["n_new_key"], c["n"]),
        "new_model_share": _ratio(c["n_new_model"], c["n"]),
        "fresh_model_share": _ratio(c["n_fresh_model"], c["n"]),
        "new_asn_share": _ratio(c["n_new_asn"], c["n"]),
        "long_answer_share": _ratio(c["n_long"], c["n"]),
        "extraction_like_share": _ratio(c["n_xlike"], c["n"]),
    }
    out["extraction_score"] = extraction_score(out)
    return out


def extraction_score(f: dict[str, np.ndarray]) -> np.ndarray:
    """How much a window looks like distillation, in [0, 1]: templated prompts, long
    completions, chain-of-thought asks and reasoning tokens. Volume plays no part.

    >>> import numpy as np
    >>> one = {k: np.array([v]) for k, v in dict(neardup_share=1.0, cot_share=0.7,
    ...        reasoning_share=0.7, completion_tokens_per_req=4000.0).items()}
    >>> float(extraction_score(one)[0])
    1.0
    """
    output_heavy = np.clip(np.log1p(f["completion_tokens_per_req"]) / np.log1p(4000.0), 0.0, 1.0)
    return (0.35 * f["neardup_share"] + 0.25 * np.clip(f["cot_share"] / 0.7, 0.0, 1.0)
            + 0.2 * np.clip(f["reasoning_share"] / 0.7, 0.0, 1.0) + 0.2 * output_heavy)
