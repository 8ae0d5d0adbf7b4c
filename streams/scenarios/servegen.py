"""Honest tenants shaped like real ones: rates, burstiness, day cycle and token lengths from ServeGen.

The table ``data/servegen_tenants.json`` holds one row per real tenant ("client") of
Alibaba Cloud Model Studio as published by ``alibaba/ServeGen`` (Apache-2.0; how each
column was derived is in ``data/README.md``): three language models over 14 days and
DeepSeek-R1 over one day, in 10-minute windows.

* :func:`load_tenant_shapes` reads the table as :class:`TenantShape` values;
* :func:`draw_tenants` picks ``n`` of them and rescales their rates to a total, keeping
  their ratios (so the heavy tail stays);
* :func:`arrivals` draws a tenant's request times: a renewal process with the tenant's
  arrival law and CV, run on the tenant's hour-of-day rate profile with a random
  10-minute rate multiplier of the tenant's measured spread;
* :func:`token_lengths` draws prompt, completion and reasoning token counts from the
  tenant's quantiles.

Everything random comes from the ``numpy.random.Generator`` passed in.

>>> rng = np.random.default_rng(7)
>>> background = draw_tenants(rng, 20, total_rate_per_s=50.0)
>>> round(sum(t.mean_rate_per_s for t in background), 6)
50.0
>>> ts = arrivals(rng, background[0], 0, 600_000)
>>> prompt, completion, reasoning = token_lengths(rng, background[0], len(ts))
>>> len(prompt) == len(ts) and bool((reasoning <= completion).all())
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "KINDS", "QUANTILE_LEVELS", "TenantShape", "arrivals", "draw_tenants", "load_tenant_shapes",
    "token_lengths",
]

#: Workload kinds in the table.
KINDS = ("language", "reasoning")
#: Probability levels of every quantile column (0 is the smallest value seen, 1 the largest).
QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995,
                   0.999, 0.9999, 1.0)
SLOT_MS = 600_000            # the source's rate windows: 10 minutes
HOUR_MS = 3_600_000
_TABLE = "servegen_tenants.json"

Int64s = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TenantShape:
    """One real tenant's traffic shape (rates possibly rescaled by :func:`draw_tenants`).

    ``hourly_rate_per_s[h]`` is the mean rate in hour ``h`` of the source's day (its
    timestamps start at its midnight; the time zone is not published), ``window_rate_cv``
    the spread of 10-minute rates around that profile, ``cv`` the request-weighted median
    CV of inter-arrival times within 10-minute windows, ``arrival_law`` the law fitted to
    the windows carrying most requests (``"Gamma"`` or ``"Weibull"``) and ``fit_shape``
    the source's median fitted shape for it. Token quantiles are at :data:`QUANTILE_LEVELS`.

    >>> shape = load_tenant_shapes("reasoning")[0]
    >>> shape.kind, shape.arrival_law in ("Gamma", "Weibull"), len(shape.hourly_rate_per_s)
    ('reasoning', True, 24)
    >>> round(shape.scaled(2.0).mean_rate_per_s / shape.mean_rate_per_s, 9)
    2.0
    """

    tenant_id: str
    kind: str
    model: str
    mean_rate_per_s: float
    hourly_rate_per_s: tuple[float, ...]
    window_rate_cv: float
    active_share: float
    cv: float
    arrival_law: str
    fit_shape: float
    prompt_quantiles: tuple[int, ...]
    completion_quantiles: tuple[int, ...]
    reasoning_share_quantiles: tuple[float, ...] | None
    tokens_from: str

    @property
    def arrival_shape(self) -> float:
        """Shape parameter of :attr:`arrival_law` whose CV is :attr:`cv` (what :func:`arrivals` uses).

        >>> s = load_tenant_shapes("language")[0]
        >>> round(replace(s, arrival_law="Gamma", cv=2.0).arrival_shape, 6)
        0.25
        >>> round(_weibull_cv(replace(s, arrival_law="Weibull", cv=2.0).arrival_shape), 6)
        2.0
        """
        if self.arrival_law == "Gamma":
            return 1.0 / max(self.cv, 1e-3) ** 2
        return _weibull_shape_for_cv(self.cv)

    def scaled(self, factor: float) -> TenantShape:
        """The same tenant with every rate multiplied by ``factor``."""
        return replace(self, mean_rate_per_s=self.mean_rate_per_s * factor,
                       hourly_rate_per_s=tuple(r * factor for r in self.hourly_rate_per_s))


def _weibull_cv(k: float) -> float:
    """CV of a Weibull law with shape ``k``.

    >>> round(_weibull_cv(1.0), 9)
    1.0
    """
    return math.sqrt(math.expm1(math.lgamma(1 + 2 / k) - 2 * math.lgamma(1 + 1 / k)))


def _weibull_shape_for_cv(cv: float) -> float:
    """Weibull shape with the given CV (bisection on log shape; CV falls as the shape grows)."""
    target = math.log1p(max(cv, 1e-3) ** 2)
    lo, hi = math.log(0.01), math.log(500.0)
    for _ in range(100):
        mid = (lo + hi) / 2
        k = math.exp(mid)
        if math.lgamma(1 + 2 / k) - 2 * math.lgamma(1 + 1 / k) > target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data", _TABLE).read_text()
    table: dict[str, Any] = json.loads(text)
    if tuple(table["quantile_levels"]) != QUANTILE_LEVELS:
        raise ValueError(f"{_TABLE}: quantile levels {table['quantile_levels']} are not {QUANTILE_LEVELS}")
    return table


def _shape(row: dict[str, Any]) -> TenantShape:
    share = row["reasoning_share"]
    return TenantShape(
        tenant_id=row["tenant"], kind=row["kind"], model=row["model"],
        mean_rate_per_s=float(row["mean_rate_per_s"]),
        hourly_rate_per_s=tuple(float(r) for r in row["hourly_rate_per_s"]),
        window_rate_cv=float(row["window_rate_cv"]), active_share=float(row["active_share"]),
        cv=float(row["cv"]), arrival_law=row["arrival_law"], fit_shape=float(row["fit_shape"]),
        prompt_quantiles=tuple(int(q) for q in row["prompt_tokens"]["quantiles"]),
        completion_quantiles=tuple(int(q) for q in row["completion_tokens"]["quantiles"]),
        reasoning_share_quantiles=None if share is None else tuple(float(q) for q in share["quantiles"]),
        tokens_from=row["tokens_from"],
    )


def load_tenant_shapes(kind: str = "language") -> list[TenantShape]:
    """The real tenants of one workload kind, biggest mean rate first.

    >>> language = load_tenant_shapes("language")
    >>> len(language) > 100, language[0].mean_rate_per_s >= language[-1].mean_rate_per_s
    (True, True)
    >>> load_tenant_shapes("video")
    Traceback (most recent call last):
    ...
    ValueError: kind must be one of ('language', 'reasoning'), not 'video'
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    shapes = [_shape(row) for row in _table()["tenants"] if row["kind"] == kind]
    return sorted(shapes, key=lambda s: (-s.mean_rate_per_s, s.tenant_id))


def draw_tenants(rng: np.random.Generator, n: int, total_rate_per_s: float,
                 kinds: tuple[str, ...] = KINDS, *, keep_top: bool = True) -> list[TenantShape]:
    """``n`` real tenant shapes whose mean rates add up to ``total_rate_per_s``, biggest first.

    The tenants of ``kinds`` are pooled with their real rates; ``n`` of them are picked at
    random without replacement (all of them, then resampled ones, if ``n`` is larger than
    the pool), always including the biggest unless ``keep_top`` is false, and every rate
    is multiplied by one factor: the ratios between tenants, hence the heavy tail, stay
    those of the data.

    >>> rng = np.random.default_rng(1)
    >>> tenants = draw_tenants(rng, 30, total_rate_per_s=100.0)
    >>> tenants[0].tenant_id == load_tenant_shapes("language")[0].tenant_id
    True
    >>> rates = [t.mean_rate_per_s for t in tenants]
    >>> round(sum(rates), 6), rates == sorted(rates, reverse=True), rates[0] > sum(rates[1:])
    (100.0, True, True)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    if not total_rate_per_s > 0:
        raise ValueError(f"total_rate_per_s must be positive, not {total_rate_per_s}")
    pool = sorted((s for kind in kinds for s in load_tenant_shapes(kind)),
                  key=lambda s: (-s.mean_rate_per_s, s.tenant_id))
    if n <= len(pool):
        if keep_top:
            rest = 1 + rng.choice(len(pool) - 1, size=n - 1, replace=False)
            idx = np.concatenate([[0], rest])
        else:
            idx = rng.choice(len(pool), size=n, replace=False)
    else:
        idx = np.concatenate([np.arange(len(pool)), rng.choice(len(pool), size=n - len(pool))])
    chosen = [pool[i] for i in np.sort(idx).tolist()]
    factor = total_rate_per_s / sum(s.mean_rate_per_s for s in chosen)
    return [s.scaled(factor) for s in chosen]


def _unit_gaps(rng: np.random.Generator, shape: TenantShape, size: int) -> npt.NDArray[np.float64]:
    """Inter-arrival times with mean 1 and the tenant's law and CV."""
    if shape.cv < 1e-3:
        return np.ones(size)
    k = shape.arrival_shape
    if shape.arrival_law == "Gamma":
        return rng.gamma(k, 1.0 / k, size=size)
    return rng.weibull(k, size=size) / math.gamma(1 + 1 / k)


def _renewal_points(rng: np.random.Generator, shape: TenantShape, horizon: float) -> npt.NDArray[np.float64]:
    """Points of a mean-1 renewal process on ``[0, horizon)``, started near equilibrium
    (the first point falls uniformly inside a length-biased gap, not at 0)."""
    probe = _unit_gaps(rng, shape, 256)
    first = probe[rng.choice(len(probe), p=probe / probe.sum())] * rng.random()
    parts, end = [np.array([first])], first
    batch = int(horizon * 1.05) + 64
    while end < horizon:
        more = end + np.cumsum(_unit_gaps(rng, shape, batch))
        parts.append(more)
        end = float(more[-1])
    points = np.concatenate(parts)
    return points[points < horizon]


def arrivals(rng: np.random.Generator, shape: TenantShape, start_ts_ms: int, end_ts_ms: int) -> Int64s:
    """Request times (epoch ms, sorted) of one tenant on ``[start_ts_ms, end_ts_ms)``.

    Each 10-minute slot (aligned to the epoch) gets the tenant's rate for its UTC hour of
    day times a Gamma multiplier of mean 1 and CV ``window_rate_cv``; a renewal process
    with the tenant's law and CV runs on the cumulative rate, so the gaps keep the CV
    while the rate follows the profile. The mean number of requests is the rate profile
    integrated over the interval.

    >>> rng = np.random.default_rng(3)
    >>> s = load_tenant_shapes("language")[0].scaled(0.001)
    >>> ts = arrivals(rng, s, 1_700_000_000_000, 1_700_003_600_000)
    >>> ts.dtype, bool((np.diff(ts) >= 0).all()), bool(((ts >= 1_700_000_000_000) & (ts < 1_700_003_600_000)).all())
    (dtype('int64'), True, True)
    >>> len(arrivals(rng, s, 5, 5))
    0
    """
    if end_ts_ms <= start_ts_ms:
        return np.zeros(0, dtype=np.int64)
    first, last = start_ts_ms // SLOT_MS, (end_ts_ms - 1) // SLOT_MS
    slots = np.arange(first, last + 1, dtype=np.int64)
    edges = np.clip(np.append(slots, last + 1) * SLOT_MS, start_ts_ms, end_ts_ms).astype(np.float64)
    rate = np.asarray(shape.hourly_rate_per_s)[(slots * SLOT_MS // HOUR_MS) % 24]
    c = shape.window_rate_cv
    if c > 0:
        rate = rate * rng.gamma(1.0 / (c * c), c * c, size=len(slots))
    cum = np.concatenate([[0.0], np.cumsum(rate * np.diff(edges) / 1000.0)])
    if not cum[-1] > 0:
        return np.zeros(0, dtype=np.int64)
    points = _renewal_points(rng, shape, float(cum[-1]))
    slot = np.searchsorted(cum, points, side="right") - 1   # the slot's rate is > 0 here
    ts: npt.NDArray[np.float64] = edges[slot] + (points - cum[slot]) / rate[slot] * 1000.0
    out: Int64s = np.minimum(np.floor(ts), end_ts_ms - 1).astype(np.int64)
    return out


def _tokens_from_quantiles(u: npt.NDArray[np.float64], quantiles: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """Inverse CDF, linear in ``log(1 + tokens)`` between the stored quantiles (closer to the
    source's heavy tails than linear: the table's means are matched to a few per cent)."""
    return np.expm1(np.interp(u, QUANTILE_LEVELS, np.log1p(np.asarray(quantiles, dtype=np.float64))))


def token_lengths(rng: np.random.Generator, shape: TenantShape, n: int) -> tuple[Int64s, Int64s, Int64s]:
    """``n`` (prompt, completion, reasoning) token counts from the tenant's quantiles.

    Prompt and completion lengths are drawn independently (the source gives each only as
    a marginal distribution); reasoning tokens are the tenant's reasoning share of the
    completion (zero for language tenants), so they never exceed it.

    >>> rng = np.random.default_rng(5)
    >>> r1 = load_tenant_shapes("reasoning")[0]
    >>> p, c, r = token_lengths(rng, r1, 1000)
    >>> p.dtype, bool((r <= c).all()), int(r.sum()) > 0
    (dtype('int64'), True, True)
    >>> int(token_lengths(rng, load_tenant_shapes("language")[0], 1000)[2].sum())
    0
    """
    prompt = np.rint(_tokens_from_quantiles(rng.random(n), shape.prompt_quantiles))
    completion = np.rint(_tokens_from_quantiles(rng.random(n), shape.completion_quantiles))
    if shape.reasoning_share_quantiles is None:
        reasoning = np.zeros(n)
    else:
        share = np.interp(rng.random(n), QUANTILE_LEVELS, shape.reasoning_share_quantiles)
        reasoning = np.rint(share * completion)
    return prompt.astype(np.int64), completion.astype(np.int64), reasoning.astype(np.int64)
