"""64-bit SimHash of a normalised prompt, and Hamming distance between fingerprints.

Near-duplicate prompts (one template, different fillings) get fingerprints a few bits
apart; unrelated prompts differ in about 32 of 64 bits.

Examples
--------
>>> a = simhash64("Explain step by step how to solve: 12 + 7 = ?")
>>> b = simhash64("Explain step by step how to solve: 41 + 9 = ?")
>>> c = simhash64("Write a haiku about autumn leaves falling in Kyoto")
>>> hamming(a, b) < hamming(a, c)
True
>>> format_fp(a) == format_fp(simhash64("  EXPLAIN step by step how to solve: 12 + 7 = ?"))
True
>>> parse_fp(format_fp(a)) == a
True
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

__all__ = ["format_fp", "hamming", "hamming_many", "normalise", "parse_fp", "simhash64",
           "simhash64_many"]

_TOKEN = re.compile(r"[a-z0-9]+")
_MASK64 = (1 << 64) - 1


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace: what the gateway fingerprints."""
    return " ".join(text.lower().split())


@functools.lru_cache(maxsize=1 << 16)   # words and word pairs repeat across prompts
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def simhash64(text: str) -> int:
    """SimHash over word unigrams and bigrams of the normalised text (an unsigned int).

    The values are part of the contract's ``prompt_fp`` and of saved template samples:
    they must not change.

    >>> format_fp(simhash64("Explain step by step how to solve: 12 + 7 = ?"))
    'f69d558c38080921'
    >>> format_fp(simhash64("a")), simhash64("")
    ('2f42665b399ef840', 0)
    """
    return int(simhash64_many([text])[0])


def _features(text: str) -> list[str]:
    # the same tokens as of normalise(text): the pattern never spans whitespace
    tokens = _TOKEN.findall(text.lower())
    return tokens + list(map(" ".join, zip(tokens, tokens[1:], strict=False)))


def simhash64_many(texts: list[str]) -> np.ndarray:
    """:func:`simhash64` of many texts at once (``uint64``), one vote count for them all.

    >>> [format_fp(h) for h in simhash64_many(["Write a haiku about autumn leaves falling in Kyoto", ""])]
    ['278a6a5aafc58e48', '0000000000000000']
    """
    per_text = [_features(t) for t in texts]
    counts = np.fromiter(map(len, per_text), dtype=np.int64, count=len(texts))
    out = np.zeros(len(texts), dtype=np.uint64)
    total = int(counts.sum())
    if total == 0:
        return out
    flat = [f for feats in per_text for f in feats]
    hashes = np.fromiter(map(_token_hash, flat), dtype=np.uint64, count=total)
    # bit j of each hash (column j), from the little-endian bytes of the hashes
    bits = np.unpackbits(hashes.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1,
                         bitorder="little")
    nonempty = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nonempty]
    votes = np.add.reduceat(bits, starts, axis=0, dtype=np.int64) * 2 - counts[nonempty, None]
    packed = np.packbits((votes > 0)[:, ::-1].astype(np.uint8), axis=1)
    out[nonempty] = packed.view(">u8")[:, 0]
    return out


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit fingerprints."""
    return ((a ^ b) & _MASK64).bit_count()


def hamming_many(fps: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Element-wise Hamming distance of two broadcastable ``uint64`` arrays.

    >>> hamming_many(np.array([0, 3], dtype=np.uint64), np.uint64(1)).tolist()
    [1, 1]
    """
    return np.bitwise_count(np.bitwise_xor(fps, ref)).astype(np.int64)


def format_fp(fp: int) -> str:
    """16 lower-case hex characters, as in the contract's ``prompt_fp``."""
    return f"{fp & _MASK64:016x}"


def parse_fp(text: str) -> int:
    if len(text) != 16:
        raise ValueError(f"prompt_fp must be 16 hex characters, got {len(text)}")
    return int(text, 16)
