"""Derive ``data/servegen_tenants.json`` from a git mirror of ``alibaba/ServeGen``.

Run from the repository root (reads only the mirror's ``data/`` tree, writes the table)::

    python -m streams.scenarios.derive_servegen --mirror /work/.mirror/alibaba+ServeGen/repo

The source publishes one trace and one dataset file per client (tenant) and model:

* ``chunk-<id>-trace.csv``: one row per 10-minute window, ``start_s,rate,cv,law,shape,scale``
  (rate in requests/s, cv of the inter-arrival times, ``law`` the fitted Gamma or Weibull
  with its shape and scale in seconds; an empty law means no request);
* ``chunk-<id>-dataset.json``: one entry per 6-hour window, each field a probability mass
  function ``{value: probability}`` written as a Python literal (token counts, and for the
  reasoning model ``reason_ratio`` on a 0..1 grid).

How each column is derived is written next to the table, in ``data/README.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = "alibaba/ServeGen"
#: (our workload kind, source category directory, source model directory)
MODELS = (
    ("language", "language", "m-large"),
    ("language", "language", "m-mid"),
    ("language", "language", "m-small"),
    ("reasoning", "reason", "deepseek-r1"),
)
WINDOW_S = 600
TOKEN_WINDOW_S = 6 * 3600
QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995,
                   0.999, 0.9999, 1.0)
MIN_REQUESTS_FOR_CV = 20   # a window's CV from fewer requests is mostly noise
OUT = Path(__file__).resolve().parent / "data" / "servegen_tenants.json"


def weighted_quantile(x: npt.ArrayLike, w: npt.ArrayLike, q: float) -> float:
    """Smallest ``x`` whose cumulative weight reaches ``q`` of the total.

    >>> weighted_quantile([1, 2, 3], [1, 1, 2], 0.5)
    2.0
    >>> weighted_quantile([1, 2, 3], [1, 1, 2], 0.0), weighted_quantile([1, 2, 3], [1, 1, 2], 1.0)
    (1.0, 3.0)
    """
    xs = np.asarray(x, dtype=float)
    ws = np.asarray(w, dtype=float)
    keep = ws > 0
    xs, ws = xs[keep], ws[keep]
    order = np.argsort(xs, kind="stable")
    xs, cum = xs[order], np.cumsum(ws[order])
    i = int(np.searchsorted(cum, q * cum[-1] - 1e-12 * cum[-1], side="left"))
    return float(xs[min(i, len(xs) - 1)])


def parse_pmf(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and probabilities of a source PMF literal such as ``"{3: 0.25, 7: 0.75}"``.

    >>> v, p = parse_pmf("{3: 0.25, 7: 0.75}")
    >>> v.tolist(), p.tolist()
    ([3.0, 7.0], [0.25, 0.75])
    >>> parse_pmf("{}")[0].size
    0
    """
    body = text.strip().removeprefix("{").removesuffix("}").strip()
    if not body:
        return np.zeros(0), np.zeros(0)
    pairs = [item.split(":") for item in body.split(",")]
    values = np.array([float(k) for k, _ in pairs])
    probs = np.array([float(v) for _, v in pairs])
    return values, probs


def pmf_quantiles(values: np.ndarray, probs: np.ndarray,
                  levels: Sequence[float] = QUANTILE_LEVELS) -> list[float]:
    """Quantiles of a discrete distribution: level 0 is its smallest value with mass, 1 its largest.

    >>> pmf_quantiles(np.array([1.0, 2.0, 10.0]), np.array([0.5, 0.4, 0.1]), (0.0, 0.5, 0.9, 1.0))
    [1.0, 1.0, 2.0, 10.0]
    """
    return [weighted_quantile(values, probs, q) for q in levels]


def _git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True,
                          text=True, check=True).stdout


def _present(mirror: Path, blobs: list[str]) -> set[str]:
    """Blob ids the mirror actually holds (a fetched snapshot lacks files of 4 MiB and more)."""
    out = subprocess.run(["git", "--git-dir", str(mirror), "cat-file", "--batch-check"],
                         input="\n".join(blobs) + "\n", capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if not line.endswith("missing")}


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def rate_summary(start_s: np.ndarray, rate: np.ndarray) -> dict[str, Any]:
    """Mean rate, its hour-of-day profile and the 10-minute variation around that profile."""
    requests = np.rint(rate * WINDOW_S)
    hour = (start_s % 86_400) // 3600
    hourly = np.array([rate[hour == h].mean() for h in range(24)])
    base = hourly[hour]
    resid = rate[base > 0] / base[base > 0]
    return {
        "requests": int(requests.sum()),
        "days": round(len(rate) * WINDOW_S / 86_400, 3),
        "mean_rate_per_s": _sig(float(requests.sum() / (len(rate) * WINDOW_S))),
        "hourly_rate_per_s": [_sig(float(r)) for r in hourly],
        "window_rate_cv": _sig(float(resid.std())) if resid.size else 0.0,
        "active_share": _sig(float((rate > 0).mean())),
        "window_rate_quantiles_per_s": [_sig(float(np.quantile(rate, q))) for q in (0.5, 0.9, 0.99, 1.0)],
    }


def arrival_summary(rate: np.ndarray, cv: np.ndarray, law: list[str],
                    shape: np.ndarray) -> dict[str, Any]:
    """Request-weighted median CV (and p10/p90) over windows with enough requests, the law
    that fits the windows carrying most requests, and that law's median fitted shape."""
    requests = rate * WINDOW_S
    use = (requests >= MIN_REQUESTS_FOR_CV) & np.array([bool(x) for x in law])
    if not use.any():
        use = (requests >= 2) & np.array([bool(x) for x in law])
    if not use.any():
        return {"cv": 1.0, "cv_p10": 1.0, "cv_p90": 1.0, "cv_windows": 0,
                "arrival_law": "Gamma", "law_share": 0.0, "fit_shape": 1.0}
    w = requests[use]
    laws = np.array(law, dtype=object)[use]
    share = {name: float(w[laws == name].sum() / w.sum()) for name in sorted(set(laws))}
    best = max(share, key=lambda k: share[k])
    return {
        "cv": _sig(weighted_quantile(cv[use], w, 0.5)),
        "cv_p10": _sig(weighted_quantile(cv[use], w, 0.1)),
        "cv_p90": _sig(weighted_quantile(cv[use], w, 0.9)),
        "cv_windows": int(use.sum()),
        "arrival_law": best,
        "law_share": _sig(share[best], 3),
        "fit_shape": _sig(weighted_quantile(shape[use][laws == best], w[laws == best], 0.5)),
    }


def _mixture(pmfs: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mixture of PMFs, merged on equal values."""
    values = np.concatenate([v for v, _, _ in pmfs])
    probs = np.concatenate([p * w for _, p, w in pmfs])
    uniq, inv = np.unique(values, return_inverse=True)
    mass = np.bincount(inv, weights=probs)
    return uniq, mass / mass.sum()


def _token_columns(mix: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, col, ratio in (("input_tokens", "prompt_tokens", False),
                              ("output_tokens", "completion_tokens", False),
                              ("reason_ratio", "reasoning_share", True)):
        if field not in mix:
            out[col] = None
            continue
        v, p = mix[field]
        q = pmf_quantiles(v, p)
        out[col] = {"mean": round(float((v * p).sum()), 4 if ratio else 1),
                    "quantiles": [round(x, 4) for x in q] if ratio else [int(x) for x in q]}
    return out


def token_mixtures(dataset: dict[str, dict[str, str]], start_s: np.ndarray,
                   rate: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per field, the mixture of the 6-hour PMFs weighted by the requests of each 6 hours."""
    requests = rate * WINDOW_S
    per_field: dict[str, list[tuple[np.ndarray, np.ndarray, float]]] = {}
    for ts, fields in dataset.items():
        t0 = int(ts)
        weight = float(requests[(start_s >= t0) & (start_s < t0 + TOKEN_WINDOW_S)].sum())
        parsed = {k: parse_pmf(v) for k, v in fields.items()}
        if weight <= 0 or any(v.size == 0 for v, _ in parsed.values()):
            continue
        for k, (v, p) in parsed.items():
            per_field.setdefault(k, []).append((v, p / p.sum(), weight))
    return {k: _mixture(pmfs) for k, pmfs in per_field.items()}


def derive(mirror: Path, commit: str) -> dict[str, Any]:
    tenants: list[dict[str, Any]] = []
    missing: list[str] = []
    n_files = 0
    for kind, category, model in MODELS:
        rows = [line.split("\t") for line in
                _git(mirror, "ls-tree", "-r", commit, f"data/{category}/{model}/").splitlines()]
        blobs = {path: meta.split()[2] for meta, path in rows}
        held = _present(mirror, list(blobs.values()))
        ids = sorted(int(Path(p).name.split("-")[1]) for p in blobs if p.endswith("-trace.csv"))
        clients = []
        for cid in ids:
            prefix = f"data/{category}/{model}/chunk-{cid}"
            lines = _git(mirror, "show", f"{commit}:{prefix}-trace.csv").split()
            cols = [line.split(",") for line in lines]
            start_s = np.array([int(c[0]) for c in cols])
            rate = np.array([float(c[1]) for c in cols])
            cv = np.array([float(c[2]) for c in cols])
            law = [c[3] for c in cols]
            shape = np.array([float(c[4]) for c in cols])
            n_files += 1
            if rate.sum() <= 0:
                continue
            record: dict[str, Any] = {"tenant": f"{model}:{cid}", "kind": kind, "model": model}
            record |= rate_summary(start_s, rate)
            record |= arrival_summary(rate, cv, law, shape)
            ds_path = f"{prefix}-dataset.json"
            mix = None
            if blobs[ds_path] in held:
                n_files += 1
                mix = token_mixtures(json.loads(_git(mirror, "show", f"{commit}:{ds_path}")),
                                     start_s, rate)
            else:
                missing.append(ds_path)
            clients.append((record, mix))
        # Tenants whose dataset file the snapshot lacks get the request-weighted pool of
        # the same model's tenants that have one.
        pool = {field: _mixture([(*m[field], float(r["requests"])) for r, m in clients if m and field in m])
                for field in ("input_tokens", "output_tokens", "reason_ratio")
                if any(m and field in m for _, m in clients)}
        for record, mix in clients:
            record |= _token_columns(mix if mix else pool)
            record["tokens_from"] = "tenant" if mix else "model_pool"
            tenants.append(record)
    tenants.sort(key=lambda r: (str(r["kind"]), -float(r["mean_rate_per_s"])))
    date = _git(mirror, "show", "-s", "--format=%cI", commit).strip()
    return {
        "schema_version": 1,
        "source": {
            "repository": f"https://github.com/{REPO}", "commit": commit, "commit_date": date,
            "licence": "Apache-2.0 (see LICENSE-ServeGen.txt next to this file)",
            "models": [f"data/{c}/{m}" for _, c, m in MODELS],
            "files_read": n_files,
            "dataset_files_absent_from_snapshot": sorted(missing),
        },
        "quantile_levels": list(QUANTILE_LEVELS),
        "window_s": WINDOW_S,
        "min_requests_for_cv": MIN_REQUESTS_FOR_CV,
        "tenants": tenants,
    }


def write_table(table: dict[str, Any], out: Path) -> None:
    """One tenant per line: small diffs when the derivation changes."""
    tenants = table["tenants"]
    head = {k: v for k, v in table.items() if k != "tenants"}
    body = ",\n".join(json.dumps(t, separators=(",", ":")) for t in tenants)
    text = json.dumps(head, indent=1)[:-2] + ',\n "tenants": [\n' + body + "\n ]\n}\n"
    json.loads(text)  # round trip
    out.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--mirror", type=Path, required=True, help="git directory of alibaba/ServeGen")
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    commit = _git(args.mirror, "rev-parse", args.commit).strip()
    table = derive(args.mirror, commit)
    write_table(table, args.out)
    tenants = table["tenants"]
    print(f"{len(tenants)} tenants -> {args.out} ({args.out.stat().st_size} bytes)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
