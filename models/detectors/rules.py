"""Rule detectors: where a plain, explainable threshold is the honest tool.

Each rule gates on a minimum volume so one stray request never pages, and reports the
features it looked at as evidence.
"""

from __future__ import annotations

import numpy as np

from models.detectors.base import Hit, WindowContext, feature_evidence

__all__ = ["CredentialCompromise", "KeyRotation", "LogitProbe", "ModelPivot", "TemplatedExtraction"]


class TemplatedExtraction:
    """Long, reasoning-heavy completions from a few prompt templates.

    Fires when most sampled prompts are near-duplicates (SimHash within a few bits), the
    completions are long, and a real share of requests asks for chain-of-thought or returns
    reasoning tokens. Honest templated batch jobs (summaries, classification) are short on
    the last two, and few-shot evaluation prompts are as long as their answers (so the
    answers must be at least ``min_out_in`` times the prompt).
    """

    rule = "templated_extraction"
    _EVIDENCE = ("requests", "neardup_share", "fp_diversity", "completion_tokens_per_req",
                 "out_in_ratio", "cot_share", "reasoning_share", "extraction_score")

    def __init__(self, min_requests: int = 30, min_neardup: float = 0.6,
                 min_completion_tokens: float = 400.0, min_reasoning: float = 0.25,
                 threshold: float = 0.6, min_out_in: float = 2.0) -> None:
        if min_requests < 1:
            raise ValueError("min_requests must be >= 1")
        self.min_requests = min_requests
        self.min_neardup = min_neardup
        self.min_completion_tokens = min_completion_tokens
        self.min_reasoning = min_reasoning
        self.threshold = threshold
        self.min_out_in = min_out_in    # few-shot eval prompts are long; distillers want output

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        score = f["extraction_score"]
        gate = ((f["requests"] >= self.min_requests) & (f["neardup_share"] >= self.min_neardup)
                & (f["completion_tokens_per_req"] >= self.min_completion_tokens)
                & (f["out_in_ratio"] >= self.min_out_in)
                & (np.maximum(f["cot_share"], f["reasoning_share"]) >= self.min_reasoning)
                & (score >= self.threshold))
        hits = []
        for row in np.flatnonzero(gate).tolist():
            n = int(f["requests"][row])
            hits.append(Hit(
                self.rule, "critical" if n >= 100 else "warning", row, float(score[row]),
                self.threshold,
                f"{n} requests in the window reuse a few prompt templates "
                f"({f['neardup_share'][row]:.0%} near-duplicates) for long reasoning-heavy "
                f"completions ({f['completion_tokens_per_req'][row]:.0f} tokens each, "
                f"{f['cot_share'][row]:.0%} ask for chain-of-thought): likely distillation.",
                feature_evidence(ctx, row, self._EVIDENCE),
            ))
        return hits


class LogitProbe:
    """Many tiny completions asking for logprobs with logit_bias: probing the output distribution."""

    rule = "logit_probe"
    _EVIDENCE = ("requests", "logprobs_share", "logit_bias_share", "completion_tokens_per_req")

    def __init__(self, min_requests: int = 10, max_completion_tokens: float = 16.0,
                 threshold: float = 0.5) -> None:
        self.min_requests = min_requests
        self.max_completion_tokens = max_completion_tokens
        self.threshold = threshold

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        score = np.minimum(f["logprobs_share"], 2 * f["logit_bias_share"])
        gate = ((f["requests"] >= self.min_requests)
                & (f["completion_tokens_per_req"] <= self.max_completion_tokens)
                & (score >= self.threshold))
        return [
            Hit(self.rule, "critical" if f["logit_bias_share"][row] >= 0.5 else "warning", row,
                float(score[row]), self.threshold,
                f"{int(f['requests'][row])} tiny completions "
                f"({f['completion_tokens_per_req'][row]:.1f} tokens) with logprobs "
                f"({f['logprobs_share'][row]:.0%}) and logit_bias "
                f"({f['logit_bias_share'][row]:.0%}): probing the model's output distribution.",
                feature_evidence(ctx, row, self._EVIDENCE))
            for row in np.flatnonzero(gate).tolist()
        ]


class KeyRotation:
    """Fan-out over API keys while rate limited: cycling keys to get around 429s."""

    rule = "key_rotation"
    _EVIDENCE = ("requests", "distinct_keys", "new_key_share", "share_429")

    def __init__(self, min_keys: float = 8.0, min_429_share: float = 0.05,
                 min_new_key_share: float = 0.25, min_requests: int = 30) -> None:
        self.min_keys = min_keys
        self.min_429_share = min_429_share
        self.min_new_key_share = min_new_key_share
        self.min_requests = min_requests

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        gate = ((f["requests"] >= self.min_requests) & (f["distinct_keys"] >= self.min_keys)
                & (f["share_429"] >= self.min_429_share)
                & (f["new_key_share"] >= self.min_new_key_share))
        return [
            Hit(self.rule, "warning", row, float(f["distinct_keys"][row]), self.min_keys,
                f"{f['distinct_keys'][row]:.0f} API keys in one window, "
                f"{f['new_key_share'][row]:.0%} of requests on keys never used before, while "
                f"{f['share_429'][row]:.0%} of requests are rate limited: key rotation around limits.",
                feature_evidence(ctx, row, self._EVIDENCE))
            for row in np.flatnonzero(gate).tolist()
        ]


class CredentialCompromise:
    """An established account suddenly used, at volume, from networks of an operator (ASN) it
    never used, pulling long answers: a stolen or resold key.

    A new address, or a new /24 of the customer's own cloud, is no tell (mobile apps, CI
    runners and new deployments show them every day): the networks must belong to an ASN
    the account never used. Short answers (apps, CI tests) are no tell either."""

    rule = "credential_compromise"
    _EVIDENCE = ("requests", "rate_per_min", "new_asn_share", "new_net_share", "new_ua_share",
                 "long_answer_share")

    def __init__(self, min_new_share: float = 0.5, min_rate_ratio: float = 3.0,
                 min_requests: int = 30, min_long_share: float = 0.3,
                 min_completion_tokens: float = 400.0) -> None:
        self.min_completion_tokens = min_completion_tokens
        self.min_new_share = min_new_share
        self.min_rate_ratio = min_rate_ratio
        self.min_requests = min_requests
        self.min_long_share = min_long_share

    def detect(self, ctx: WindowContext) -> list[Hit]:
        f = ctx.features
        base_rate = np.maximum(ctx.baseline_mean[:, 0], 1e-9)
        ratio = f["rate_per_min"] / base_rate
        gate = (ctx.warmed_up & (f["requests"] >= self.min_requests)
                & (f["new_asn_share"] >= self.min_new_share)
                & ((f["long_answer_share"] >= self.min_long_share)
                   | (f["completion_tokens_per_req"] >= self.min_completion_tokens))
                & (ratio >= self.min_rate_ratio))
        hits = []
        for row in np.flatnonzero(gate).tolist():
            ev = feature_evidence(ctx, row, self._EVIDENCE)
            ev["baseline_rate_per_min"] = round(float(base_rate[row]), 4)
            hits.append(Hit(
                self.rule, "critical", row, float(ratio[row]), self.min_rate_ratio,
                f"Established account sending {ratio[row]:.1f}x its usual rate, "
                f"{f['new_asn_share'][row]:.0%} from network operators (ASNs) it never used, "
                f"{f['long_answer_share'][row]:.0%} long answers: its key is likely stolen or "
                f"resold.", ev))
        return hits


class ModelPivot:
    """An account with history moving most of its extraction-like traffic onto a model
    released during observation (campaigns retarget new models within hours)."""

    rule = "model_pivot"
    _EVIDENCE = ("requests", "fresh_model_share", "h_fresh_model_share", "extraction_score",
                 "xlike_share", "neardup_share", "completion_tokens_per_req")

    def __init__(self, min_fresh_share: float = 0.6, min_score: float = 0.45,
                 min_requests: int = 20, min_history_windows: int = 3,
                 min_xlike_share: float = 0.3, min_horizon_requests: float = 15.0) -> None:
        self.min_horizon_requests = min_horizon_requests
        self.min_fresh_share = min_fresh_share
        self.min_score = min_score
        self.min_requests = min_requests
        self.min_history_windows = min_history_windows
        self.min_xlike_share = min_xlike_share

    def detect(self, ctx: WindowContext) -> list[Hit]:
        # The window's share where the window is busy enough to say, else the share over the
        # account's recent hours (models.horizon): a slow account pivots too.
        f = ctx.features
        fresh = np.maximum(np.where(f["requests"] >= self.min_requests, f["fresh_model_share"], 0.0),
                           np.where(f["h_requests"] >= self.min_horizon_requests,
                                    f["h_fresh_model_share"], 0.0))
        gate = ((ctx.windows_seen >= self.min_history_windows)
                & (fresh >= self.min_fresh_share)
                & ((f["extraction_score"] >= self.min_score)
                   | (f["xlike_share"] >= self.min_xlike_share)))
        return [
            Hit(self.rule, "warning", row, float(fresh[row]), self.min_fresh_share,
                f"{fresh[row]:.0%} of this account's requests moved to a newly "
                f"released model, with extraction-like traffic (score "
                f"{f['extraction_score'][row]:.2f}): a campaign retargeting the new model.",
                feature_evidence(ctx, row, self._EVIDENCE))
            for row in np.flatnonzero(gate).tolist()
        ]
