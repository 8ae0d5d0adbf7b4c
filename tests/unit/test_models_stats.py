"""Statistics of ``models/`` against plain numpy / Python references on seeded random input.

Each vectorised routine is compared with a naive computation written independently (loops,
masks, Python ints), and everything that claims to be order- or batch-independent is fed
the same data split and shuffled in different ways.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import reduce
from operator import or_

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.accounts import BASELINE_FEATURES, AccountTable
from models.dedup import DedupIndex
from models.features import FEATURES, extraction_score, window_features
from models.sketches import BITS, add_hashes, bits_of, estimate_distinct, union_count
from models.templates import EMPTY, SAMPLE_K, merge_sample, mix, neardup_share, representative
from models.windows import BITMAPS, COUNTERS, WindowAccumulator, WindowSummary

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E37_79B9_7F4A_7C15
SETTINGS = settings(max_examples=40, deadline=None, database=None)


# -- naive references ---------------------------------------------------------------------------
def mix_ref(fp: int) -> int:
    x = (fp * GOLDEN) & MASK64
    return x ^ (x >> 29)


def bottom_k_ref(fps: list[int], k: int) -> list[int]:
    """The k distinct fingerprints with the smallest mix(), in that order, padded with EMPTY."""
    chosen = sorted(set(fps), key=mix_ref)[:k]
    return chosen + [int(EMPTY)] * (k - len(chosen))


def neardup_ref(row: list[int], max_bits: int) -> float:
    valid = [f for f in row if f != int(EMPTY)]
    if len(valid) < 2:
        return 0.0
    near = [any(j != i and (a ^ b).bit_count() <= max_bits for j, b in enumerate(valid))
            for i, a in enumerate(valid)]
    return sum(near) / len(valid)


def distinct_ref(word: int) -> float:
    zeros = max(BITS - word.bit_count(), 0.5)
    return BITS * math.log(BITS / zeros)


def word_ref(hashes: list[int]) -> int:
    """Reference sketch word: hash 0 means "absent" and sets no bit."""
    return reduce(or_, (1 << (h % 64) for h in hashes if h != 0), 0)


# -- sketches -----------------------------------------------------------------------------------
def test_bits_and_words_match_python_ints() -> None:
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**32, 500, dtype=np.uint32)
    rows = rng.integers(0, 7, 500)
    assert [int(b) for b in bits_of(hashes)] == [1 << (int(h) % 64) for h in hashes]
    words = np.zeros(7, dtype=np.uint64)
    add_hashes(words, rows, hashes)
    expected = [word_ref([int(h) for h in hashes[rows == r]]) for r in range(7)]
    assert [int(w) for w in words] == expected
    assert union_count(words).tolist() == [w.bit_count() for w in expected]
    assert estimate_distinct(words).tolist() == pytest.approx(
        [distinct_ref(w) for w in expected], rel=1e-12)


def test_estimate_distinct_edges() -> None:
    empty, one, full = np.zeros(1, np.uint64), np.ones(1, np.uint64), np.full(1, EMPTY)
    assert estimate_distinct(empty).tolist() == [0.0]
    assert estimate_distinct(one)[0] == pytest.approx(64 * math.log(64 / 63))   # ~1.008
    assert estimate_distinct(full)[0] == pytest.approx(64 * math.log(128))      # finite
    # hash 0 means "absent": it sets no bit and counts as nothing
    words = np.zeros(2, np.uint64)
    add_hashes(words, np.array([0, 0, 1]), np.array([0, 0, 64], np.uint32))
    assert words.tolist() == [0, 1] and estimate_distinct(words)[0] == 0.0
    # the same value many times is still one value
    words = np.zeros(1, np.uint64)
    add_hashes(words, np.zeros(1000, np.int64), np.full(1000, 12345, np.uint32))
    assert estimate_distinct(words)[0] == pytest.approx(1.008, abs=1e-3)


def test_estimate_distinct_tracks_true_count_1_to_40() -> None:
    """Linear counting on 64 bits: unbiased to ~1% on average, each estimate within 5 sd."""
    rng = np.random.default_rng(2024)
    trials = 400
    for n in range(1, 41):
        values = np.concatenate([rng.choice(2**32, n, replace=False) for _ in range(trials)])
        rows = np.repeat(np.arange(trials), n)
        words = np.zeros(trials, dtype=np.uint64)
        # each distinct value twice, in a shuffled order: repeats must not count
        order = rng.permutation(2 * len(values))
        add_hashes(words, np.tile(rows, 2)[order], np.tile(values, 2)[order].astype(np.uint32))
        est = estimate_distinct(words)
        t = n / BITS
        sd = math.sqrt(BITS * (math.exp(t) - t - 1))          # Whang et al. 1990
        assert abs(est.mean() - n) <= 0.03 * n + 0.05, (n, est.mean())
        assert np.all(np.abs(est - n) <= 5 * sd + 0.5), (n, est.min(), est.max())
    # and it tells "one key" from "dozens" every single time
    assert est.min() > 20


# -- templates: bottom-k sample -----------------------------------------------------------------
def test_mix_matches_python_reference_and_is_injective() -> None:
    rng = np.random.default_rng(3)
    fps = rng.integers(0, 2**63, 2000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    fps[:5] = [0, 1, 2**63, 2**64 - 2, EMPTY]
    got = mix(fps.copy())
    assert [int(x) for x in got] == [mix_ref(int(f)) for f in fps]
    assert len(np.unique(got)) == len(np.unique(fps))


fp_values = st.one_of(st.sampled_from([1, 2, 3, 0xF0F0, 2**63, 2**64 - 2]),
                      st.integers(0, 2**64 - 2))


@SETTINGS
@given(events=st.lists(st.tuples(st.integers(0, 4), fp_values), max_size=60),
       k=st.sampled_from([1, 3, SAMPLE_K]), data=st.data())
def test_merge_sample_is_bottom_k_of_distinct_fps_whatever_the_batching(
        events: list[tuple[int, int]], k: int, data: st.DataObject) -> None:
    rows = 5
    expected = [bottom_k_ref([f for r, f in events if r == row], k) for row in range(rows)]

    perm = data.draw(st.permutations(range(len(events))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    shuffled = [events[i] for i in perm]
    sample = np.full((rows, k), EMPTY, dtype=np.uint64)
    for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        part = shuffled[a:b]
        merge_sample(sample, np.array([r for r, _ in part], dtype=np.int64),
                     np.array([f for _, f in part], dtype=np.uint64))
    assert [[int(x) for x in row] for row in sample] == expected
    assert [int(x) for x in representative(sample)] == [row[0] for row in expected]


def test_merge_sample_of_heavy_rows_matches_the_reference() -> None:
    """Rows that fill up in the first batch and keep receiving thousands of fingerprints
    (the filter against a full row's last entry does most of the work here)."""
    rng = np.random.default_rng(11)
    rows, k = 4, SAMPLE_K
    sample = np.full((rows, k), EMPTY, dtype=np.uint64)
    seen: list[list[int]] = [[] for _ in range(rows)]
    for _ in range(12):
        r = rng.choice(rows, 800, p=[0.7, 0.2, 0.09, 0.01])
        f = rng.integers(0, 2**63, 800, dtype=np.int64).astype(np.uint64)
        f[::7] = f[0]                                   # repeats within the batch ...
        if seen[0]:
            f[1::11] = np.uint64(seen[0][0])            # ... and of earlier batches
        merge_sample(sample, r, f)
        for row, fp in zip(r.tolist(), f.tolist(), strict=True):
            seen[row].append(fp)
        assert [[int(x) for x in row] for row in sample] == [bottom_k_ref(s, k) for s in seen]


def test_merge_sample_leaves_other_rows_alone() -> None:
    sample = np.full((3, 4), EMPTY, dtype=np.uint64)
    sample[2] = [5, 6, 7, EMPTY]
    before = sample[2].copy()
    merge_sample(sample, np.array([0, 0]), np.array([9, 9], dtype=np.uint64))
    assert sample[0].tolist() == [9, int(EMPTY), int(EMPTY), int(EMPTY)]
    assert sample[1].tolist() == [int(EMPTY)] * 4
    assert sample[2].tolist() == before.tolist()


def _near(rng: np.random.Generator, base: int, n: int, max_flips: int) -> list[int]:
    out = []
    for _ in range(n):
        bits = rng.choice(64, int(rng.integers(1, max_flips + 1)), replace=False)
        out.append(base ^ sum(1 << int(b) for b in bits))
    return out


def test_neardup_share_on_constructed_samples() -> None:
    rng = np.random.default_rng(4)
    a, b = 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210          # 64 bits apart
    e = int(EMPTY)
    far = [0x0000_0000_0000_0000, 0xFFFF_FFFF_0000_0000, 0x0000_FFFF_FFFF_0000,
           0x5555_5555_5555_5555, 0xAAAA_AAAA_AAAA_AAAA, 0x3333_3333_3333_3333,
           0xCCCC_CCCC_CCCC_CCCC, 0x0F0F_0F0F_0F0F_0F0F]
    assert all((x ^ y).bit_count() > 12 for i, x in enumerate(far) for y in far[i + 1:])
    rows = [
        _near(rng, a, 8, 6),                               # one template: all near
        far,                                               # nothing near
        _near(rng, a, 3, 4) + _near(rng, b, 2, 4) + far[3:6],   # 3 + 2 near, 3 alone
        [a, a ^ 0b11, e, e, e, e, e, e],                   # two valid, near
        [a, e, e, e, e, e, e, e],                          # one valid: no share
        [e] * 8,                                           # empty row
        [a, a ^ 0xFFF, a ^ 0x1FFF0000, e, e, e, e, e],     # 12 bits: near; 13 bits: not
    ]
    sample = np.array(rows, dtype=np.uint64)
    got = neardup_share(sample, max_bits=12).tolist()
    assert got == pytest.approx([1.0, 0.0, 5 / 8, 1.0, 0.0, 0.0, 2 / 3])
    assert neardup_share(sample, max_bits=13).tolist()[6] == pytest.approx(1.0)
    assert neardup_share(sample, max_bits=0).tolist() == [0.0] * 7


def test_neardup_share_matches_naive_pairs_on_random_samples() -> None:
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(300):
        m = int(rng.integers(0, SAMPLE_K + 1))
        base = int(rng.integers(0, 2**63)) * 2
        vals = [(_near(rng, base, 1, 16)[0] if rng.random() < 0.6 else
                 int(rng.integers(0, 2**63)) * 2 + 1) for _ in range(m)]
        rows.append(vals + [int(EMPTY)] * (SAMPLE_K - m))
    sample = np.array(rows, dtype=np.uint64)
    for max_bits in (4, 12, 20):
        expected = [neardup_ref(r, max_bits) for r in rows]
        assert neardup_share(sample, max_bits).tolist() == pytest.approx(expected)
    assert 0.1 < np.mean(neardup_share(sample, 12) > 0) < 0.9     # the data has both kinds


# -- windows: per-slot sums, sketches, extremes ---------------------------------------------------
def random_window_events(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    universe = rng.choice(300, 25, replace=False)              # sparse slots, some > 64
    ev = {"slots": universe[rng.integers(0, len(universe), n)].astype(np.int64),
          "ts": rng.integers(0, 60_000, n).astype(np.int64),
          "fps": rng.choice(np.array([11, 12, 13, 2**63 + 5], np.uint64), n)
          if seed % 2 else rng.integers(0, 2**62, n).astype(np.uint64),
          "has_fp": rng.random(n) < 0.7}
    for name in COUNTERS:
        ev[name] = (np.ones(n, np.int64) if name == "n" else
                    rng.integers(0, 5000, n) if "tokens" in name else rng.random(n) < 0.3)
    for name in BITMAPS:
        ev["h_" + name] = rng.integers(0, 2**32, n, dtype=np.uint32)
        ev["h_" + name][rng.random(n) < 0.3] = 0                 # absent
    return ev


def accumulate(ev: dict[str, np.ndarray], cuts: list[int]) -> WindowAccumulator:
    acc = WindowAccumulator(0, 60_000)
    n = len(ev["slots"])
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        s = slice(a, b)
        acc.add(ev["slots"][s], {k: ev[k][s] for k in COUNTERS},
                {k: ev["h_" + k][s] for k in BITMAPS}, ev["ts"][s])
        fp = np.flatnonzero(ev["has_fp"][s]) + a
        acc.add_fingerprints(ev["slots"][fp], ev["fps"][fp])
    return acc


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400), data=st.data())
def test_window_accumulator_matches_groupby_whatever_the_split(
        seed: int, n: int, data: st.DataObject) -> None:
    ev = random_window_events(seed, n)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    s = accumulate(ev, cuts).close()

    uniq = np.unique(ev["slots"])
    assert s.slots.tolist() == uniq.tolist()
    for i, slot in enumerate(uniq.tolist()):
        m = ev["slots"] == slot
        for name in COUNTERS:
            assert s.counters[name][i] == int(ev[name][m].astype(np.int64).sum()), name
        for name in BITMAPS:
            assert int(s.bitmaps[name][i]) == word_ref([int(h) for h in ev["h_" + name][m]])
        assert (s.first_ts[i], s.last_ts[i]) == (ev["ts"][m].min(), ev["ts"][m].max())
        for name, low in s.min_hashes.items():      # smallest non-zero hash, or "none"
            present = [int(h) for h in ev["h_" + name][m] if h != 0]
            assert int(low[i]) == min(present, default=0xFFFF_FFFF), name
        fps = [int(f) for f in ev["fps"][m & ev["has_fp"]]]
        assert [int(x) for x in s.fp_sample[i]] == bottom_k_ref(fps, SAMPLE_K)
    # and it is the very same as one batch
    whole = accumulate(ev, []).close()
    for name in COUNTERS:
        assert np.array_equal(whole.counters[name], s.counters[name])
    assert np.array_equal(whole.fp_sample, s.fp_sample)
    assert set(whole.min_hashes) == {"nets", "asns", "uas"}
    for name, low in whole.min_hashes.items():
        assert np.array_equal(low, s.min_hashes[name])


def test_window_accumulator_empty_and_growth() -> None:
    acc = WindowAccumulator(0, 60_000)
    assert len(acc.close()) == 0
    acc.add(np.zeros(0, np.int64), {"n": np.zeros(0)}, {}, np.zeros(0, np.int64))
    assert len(acc.close()) == 0
    acc.add(np.array([500]), {"n": np.ones(1, np.int64)}, {}, np.array([7]))
    acc.add(np.array([3]), {"n": np.ones(1, np.int64)}, {}, np.array([9]))
    s = acc.close()
    assert acc.capacity >= 501
    assert s.slots.tolist() == [3, 500]
    assert s.first_ts.tolist() == [9, 7]


# -- features ---------------------------------------------------------------------------------
def random_summary(seed: int, rows: int = 200, minutes: int = 1) -> WindowSummary:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 300, rows)

    def part(p: float) -> np.ndarray:
        return np.where(rng.random(rows) < 0.1, 0, rng.binomial(n, p)).astype(np.int64)

    counters = {"n": n.astype(np.int64)}
    for name in COUNTERS[1:]:
        if name.endswith("_tokens"):
            counters[name] = np.where(rng.random(rows) < 0.1, 0, n * rng.integers(0, 3000, rows))
        else:
            counters[name] = part(float(rng.random()))
    bitmaps = {name: rng.integers(0, 2**63, rows, dtype=np.int64).astype(np.uint64)
               & rng.integers(0, 2**63, rows, dtype=np.int64).astype(np.uint64)
               for name in BITMAPS}
    bitmaps["keys"][:5] = [0, 1, 3, int(EMPTY), 2**40]
    sample = np.full((rows, SAMPLE_K), EMPTY, dtype=np.uint64)
    for r in range(rows):
        m = int(rng.integers(0, SAMPLE_K + 1))
        base = int(rng.integers(0, 2**62))
        sample[r, :m] = [base ^ (1 << int(b)) if rng.random() < 0.5 else int(rng.integers(0, 2**62))
                         for b in rng.integers(0, 64, m)]
    return WindowSummary(0, minutes * 60_000, np.arange(rows, dtype=np.int64), counters, bitmaps,
                         np.zeros(rows, np.int64), np.zeros(rows, np.int64), sample)


@pytest.mark.parametrize("seed, minutes", [(0, 1), (1, 5), (2, 1)])
def test_window_features_match_direct_computation(seed: int, minutes: int) -> None:
    s = random_summary(seed, minutes=minutes)
    f = window_features(s)
    assert set(f) == set(FEATURES)
    c = {k: v.astype(np.float64) for k, v in s.counters.items()}
    n = c["n"]

    def share(num: str, den: str) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c[den] > 0, c[num] / c[den], 0.0)

    def distinct(name: str) -> np.ndarray:
        return np.array([distinct_ref(int(w)) for w in s.bitmaps[name]])

    expected = {
        "requests": n, "rate_per_min": n / minutes,
        "prompt_tokens_per_req": c["prompt_tokens"] / n,
        "completion_tokens_per_req": c["completion_tokens"] / n,
        "out_in_ratio": c["completion_tokens"] / np.maximum(c["prompt_tokens"], 1),
        "reasoning_share": share("reasoning_tokens", "completion_tokens"),
        "ok_share": c["n_ok"] / n, "share_429": c["n_429"] / n, "error_share": c["n_error"] / n,
        "cot_share": c["n_cot"] / n, "logprobs_share": c["n_logprobs"] / n,
        "logit_bias_share": c["n_logit_bias"] / n, "new_net_share": c["n_new_net"] / n,
        "new_ua_share": c["n_new_ua"] / n, "new_key_share": c["n_new_key"] / n,
        "new_model_share": c["n_new_model"] / n, "fresh_model_share": c["n_fresh_model"] / n,
        "new_asn_share": c["n_new_asn"] / n, "long_answer_share": c["n_long"] / n,
        "extraction_like_share": c["n_xlike"] / n,
        "neardup_share": np.array([neardup_ref([int(x) for x in row], 12) for row in s.fp_sample]),
        "fp_diversity": np.where(c["n_fp"] > 0,
                                 np.minimum(distinct("fps") / np.maximum(c["n_fp"], 1), 1.0), 1.0),
    }
    for name in BITMAPS[:-1]:
        expected["distinct_" + name] = distinct(name)
    out_heavy = np.minimum(np.log(1 + expected["completion_tokens_per_req"]) / math.log(4001), 1)
    expected["extraction_score"] = (
        0.35 * expected["neardup_share"] + 0.25 * np.minimum(expected["cot_share"] / 0.7, 1)
        + 0.2 * np.minimum(expected["reasoning_share"] / 0.7, 1) + 0.2 * out_heavy)
    for name in FEATURES:
        assert f[name].dtype == np.float64, name
        np.testing.assert_allclose(f[name], expected[name], rtol=1e-12, atol=1e-12,
                                   err_msg=name)
    # the guarded rows are really there
    assert (s.counters["completion_tokens"] == 0).any() and (s.counters["n_fp"] == 0).any()
    assert ((f["extraction_score"] >= 0) & (f["extraction_score"] <= 1)).all()


def test_extraction_score_extremes() -> None:
    zero = {k: np.zeros(1) for k in ("neardup_share", "cot_share", "reasoning_share",
                                     "completion_tokens_per_req")}
    assert extraction_score(zero).tolist() == [0.0]
    big = {"neardup_share": np.ones(1), "cot_share": np.ones(1), "reasoning_share": np.ones(1),
           "completion_tokens_per_req": np.full(1, 1e6)}
    assert extraction_score(big).tolist() == pytest.approx([1.0])


# -- accounts ---------------------------------------------------------------------------------
def test_account_slots_and_first_seen_match_a_dict() -> None:
    rng = np.random.default_rng(6)
    t = AccountTable()
    ref: dict[str, int] = {}
    first: dict[str, int] = {}
    for _ in range(30):
        ids = [f"acct-{i}" for i in rng.integers(0, 150, int(rng.integers(1, 50)))]
        ts = rng.integers(0, 10**9, len(ids))
        for a, x in zip(ids, ts.tolist(), strict=True):
            first.setdefault(a, x)
            ref.setdefault(a, len(ref))
        got = t.slots_for(ids, ts)
        assert got.tolist() == [ref[a] for a in ids]
    assert t.ids == list(ref) and len(t) == len(ref)
    assert t.first_seen_ts[: len(t)].tolist() == [first[a] for a in t.ids]
    assert t.ids_of(np.array([3, 0])) == [t.ids[3], t.ids[0]]


def test_account_ew_baselines_and_history_match_a_reference_loop() -> None:
    rng = np.random.default_rng(7)
    n_acc, alpha, k = 40, 0.1, len(BASELINE_FEATURES)
    t = AccountTable()
    t.slots_for([f"a{i}" for i in range(n_acc)], np.zeros(n_acc, np.int64))
    mean = [[0.0] * k for _ in range(n_acc)]
    var = [[0.0] * k for _ in range(n_acc)]
    history: list[list[list[float]]] = [[] for _ in range(n_acc)]
    known = defaultdict(int)
    for w in range(60):
        slots = np.sort(rng.choice(n_acc, int(rng.integers(1, n_acc)), replace=False))
        x = rng.gamma(2.0, 3.0, (len(slots), k)) + (w > 30) * 5.0
        bitmaps = {b: rng.integers(0, 2**63, len(slots)).astype(np.uint64)
                   for b in ("nets", "uas", "keys", "models")}
        t.observe_window(slots, (w + 1) * 60_000, bitmaps, x, alpha=alpha)
        for i, s in enumerate(slots.tolist()):
            history[s].append(x[i].tolist())
            for b in bitmaps:
                known[b, s] |= int(bitmaps[b][i])
            for j in range(k):
                if len(history[s]) == 1:
                    mean[s][j], var[s][j] = x[i, j], 0.0
                else:
                    d = x[i, j] - mean[s][j]
                    mean[s][j] += alpha * d
                    var[s][j] = (1 - alpha) * (var[s][j] + alpha * d * d)
    for s in range(n_acc):
        np.testing.assert_allclose(t.ew_mean[s], mean[s], rtol=1e-12)
        np.testing.assert_allclose(t.ew_var[s], var[s], rtol=1e-10, atol=1e-12)
        # the EW mean is the usual closed form: (1-a)^(m-1) x_1 + sum a (1-a)^(m-j) x_j
        h = np.array(history[s])
        m = len(h)
        weights = np.array([(1 - alpha) ** (m - 1)] + [alpha * (1 - alpha) ** (m - j)
                                                       for j in range(2, m + 1)])
        np.testing.assert_allclose(t.ew_mean[s], weights @ h, rtol=1e-10)
        assert t.windows_seen[s] == m
        for b in ("nets", "uas", "keys", "models"):
            assert int(getattr(t, f"known_{b}")[s]) == known[b, s]
    assert (t.ew_var[:n_acc] >= 0).all() and (t.ew_var[:n_acc] > 0).any()


def test_account_is_new_against_history() -> None:
    t = AccountTable()
    slots = t.slots_for(["a", "b"], np.array([0, 0]))
    words = np.zeros(2, np.uint64)
    add_hashes(words, np.array([0, 0]), np.array([5, 70], np.uint32))   # a saw 5 and 70 (=6)
    t.observe_window(slots, 60_000, {"nets": words, "uas": words, "keys": words,
                                     "models": words}, np.zeros((2, len(BASELINE_FEATURES))))
    ev_slots = np.array([0, 0, 0, 1])
    bits = bits_of(np.array([5, 6, 7, 5], np.uint32))
    assert t.is_new("known_nets", ev_slots, bits).tolist() == [False, False, True, True]


# -- dedup ------------------------------------------------------------------------------------
class DedupRef:
    """A dict of sets: what DedupIndex promises, written the obvious way."""

    def __init__(self, horizon_ms: int) -> None:
        self.horizon = horizon_ms
        self.seen: dict[int, set[int]] = defaultdict(set)
        self.first_offset: dict[int, int] = {}

    def check_and_add(self, keys: list[int], ts: list[int], offsets: list[int]) -> list[bool]:
        out = []
        for key, t, off in zip(keys, ts, offsets, strict=True):
            b = t // 60_000
            out.append(key in self.seen[b])
            self.seen[b].add(key)
            self.first_offset[b] = min(self.first_offset.get(b, off), off)
        return out

    def expire(self, wm: int) -> None:
        oldest = (wm - self.horizon) // 60_000
        for b in [b for b in self.seen if b < oldest]:
            del self.seen[b]
            self.first_offset.pop(b, None)

    def __len__(self) -> int:
        return sum(len(v) for v in self.seen.values())


@SETTINGS
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12)),
                                 max_size=40), min_size=1, max_size=25),
       horizon_min=st.integers(1, 6))
def test_dedup_index_matches_a_set_reference(batches: list[list[tuple[int, int]]],
                                             horizon_min: int) -> None:
    """Keys repeat within and across batches; time moves forward and old buckets expire.
    (A key folds in its timestamp, as dedup_key does: a duplicate has the same ts.)"""
    d, ref = DedupIndex(horizon_ms=horizon_min * 60_000), DedupRef(horizon_min * 60_000)
    offset = wm = 0
    for batch in batches:
        keys = [k for k, _ in batch]
        ts = [(k % 13 + minute) * 60_000 + k for k, minute in batch]
        offs = list(range(offset, offset + len(batch)))
        offset += len(batch)
        got = d.check_and_add(np.array(keys, dtype=np.uint64), np.array(ts, dtype=np.int64),
                              np.array(offs, dtype=np.int64))
        assert got.tolist() == ref.check_and_add(keys, ts, offs)
        wm = max([wm, *ts])
        d.expire(wm)
        ref.expire(wm)
        assert len(d) == len(ref)
        assert d.rebuild_from_offset() == (min(ref.first_offset.values())
                                           if ref.first_offset else None)


def test_dedup_index_many_runs_then_merge() -> None:
    rng = np.random.default_rng(8)
    d, ref = DedupIndex(horizon_ms=10**12), DedupRef(10**12)
    for _ in range(50):                       # > 8 runs per bucket: exercises the merge
        keys = rng.integers(0, 2**64 - 1, 30, dtype=np.uint64)
        keys[:10] = rng.integers(0, 200, 10)
        ts = rng.integers(0, 120_000, 30)
        got = d.check_and_add(keys, ts)
        assert got.tolist() == ref.check_and_add([int(k) for k in keys], ts.tolist(), [0] * 30)
    assert len(d) == len(ref) and sum(ref.check_and_add([], [], [])) == 0


def test_dedup_expiry_boundary() -> None:
    d = DedupIndex(horizon_ms=120_000)
    one = np.array([1], dtype=np.uint64)
    assert d.check_and_add(one, np.array([30_000]), np.array([17])).tolist() == [False]
    d.expire(179_999)                          # bucket 0 still inside the horizon
    assert d.rebuild_from_offset() == 17
    assert d.check_and_add(one, np.array([30_000])).tolist() == [True]
    d.expire(180_000)                          # (180_000 - 120_000) // 60_000 = 1 > bucket 0
    assert len(d) == 0 and d.rebuild_from_offset() is None
    assert d.check_and_add(one, np.array([30_000])).tolist() == [False]
    # same key in another minute bucket is another event
    assert d.check_and_add(one, np.array([90_000])).tolist() == [False]
