"""Template concentration from a bottom-k sample of prompt fingerprints.

Each account-window keeps the ``k`` fingerprints with the smallest mixed hash: an
order-independent sample, so the result does not depend on how events were batched.
At window close, the near-duplicate share is the fraction of sampled fingerprints with
another sampled fingerprint within ``max_bits`` Hamming distance (one template, many fillings).

>>> import numpy as np
>>> base = np.uint64(0xF0F0_F0F0_1234_5678)
>>> variants = base ^ (np.uint64(1) << np.arange(8, dtype=np.uint64))   # 1 bit apart each
>>> sample = np.full((2, 8), EMPTY, dtype=np.uint64)
>>> merge_sample(sample, np.zeros(8, dtype=np.int64), variants)
>>> rng = np.random.default_rng(0)
>>> merge_sample(sample, np.ones(8, dtype=np.int64),
...              rng.integers(0, 2**63, 8, dtype=np.int64).astype(np.uint64))
>>> neardup_share(sample, max_bits=12).round(2).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["EMPTY", "SAMPLE_K", "merge_sample", "mix", "neardup_share", "representative"]

SAMPLE_K = 8
EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # an empty sample slot (mix() of it sorts last)
_GOLDEN = np.uint64(0x9E37_79B9_7F4A_7C15)


def mix(fps: np.ndarray) -> np.ndarray:
    """A fixed bijective scramble of 64-bit values: the sample's priority order."""
    with np.errstate(over="ignore"):
        x = fps * _GOLDEN
    x ^= x >> np.uint64(29)
    return x


def _priority(fps: np.ndarray) -> np.ndarray:
    """Sample order: :func:`mix`, with EMPTY last."""
    return np.where(fps == EMPTY, EMPTY, mix(fps))


def merge_sample(sample: np.ndarray, rows: np.ndarray, fps: np.ndarray) -> None:
    """Merge fingerprints ``fps`` (row ``rows[i]``) into the bottom-k ``sample`` in place."""
    if len(rows) == 0:
        return
    k = sample.shape[1]
    # A row's sample is sorted by priority, so a full row's last entry is the bar to beat:
    # anything at or above it can never enter. Heavy accounts fill their sample within a
    # few requests, so most of a batch stops here instead of going through the sort below.
    last = sample[rows, k - 1]
    full = last != EMPTY
    if full.any():
        candidate = ~full | (_priority(fps) < mix(last))
        if not candidate.all():
            rows, fps = rows[candidate], fps[candidate]
            if len(rows) == 0:
                return
    uniq_rows = np.unique(rows)
    old = sample[uniq_rows]                                  # (m, k)
    filled = old != EMPTY                                    # most rows of a batch are far from full
    old_rows = np.broadcast_to(uniq_rows[:, None], old.shape)[filled]
    all_rows = np.concatenate([old_rows, rows])
    all_fps = np.concatenate([old[filled], fps])
    pri = _priority(all_fps)
    order = np.lexsort((pri, all_rows))    # mix() is a bijection: equal priority, equal fp
    r, f = all_rows[order], all_fps[order]
    keep = np.ones(len(r), dtype=bool)
    keep[1:] = (r[1:] != r[:-1]) | (f[1:] != f[:-1])        # drop exact repeats
    r, f = r[keep], f[keep]
    starts = np.searchsorted(r, uniq_rows)
    rank = np.arange(len(r)) - np.repeat(starts, np.diff(np.append(starts, len(r))))
    take = rank < k
    out = np.full((len(uniq_rows), k), EMPTY, dtype=np.uint64)
    out[np.searchsorted(uniq_rows, r[take]), rank[take]] = f[take]
    sample[uniq_rows] = out


def neardup_share(sample: np.ndarray, max_bits: int = 12) -> np.ndarray:
    """Per row: share of sampled fingerprints with a near neighbour in the same sample."""
    valid = sample != EMPTY
    x = np.bitwise_count(sample[:, :, None] ^ sample[:, None, :]).astype(np.int64)
    near = (x <= max_bits) & valid[:, :, None] & valid[:, None, :]
    k = sample.shape[1]
    near[:, np.arange(k), np.arange(k)] = False
    has = near.any(axis=2) & valid
    n = valid.sum(axis=1)
    return np.divide(has.sum(axis=1), n, out=np.zeros(len(sample)), where=n >= 2)


def representative(sample: np.ndarray) -> np.ndarray:
    """The first sampled fingerprint of each row (a stable template id for the window)."""
    return sample[:, 0].copy()
