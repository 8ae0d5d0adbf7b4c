"""A batch of request events from one partition, as columns (offset order kept)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RequestColumns"]


@dataclass(frozen=True, slots=True)
class RequestColumns:
    """Columns of one batch. Strings the detectors only compare are given as stable hashes.

    ``prompt_fp`` is 0 where ``has_fp`` is False. ``dedup_key`` identifies an event for
    duplicate suppression (a hash of ``event_id`` folded with its timestamp).
    """

    account_ids: list[str]
    ts: np.ndarray                 # int64 epoch ms (event time)
    prompt_tokens: np.ndarray      # int64
    completion_tokens: np.ndarray  # int64
    reasoning_tokens: np.ndarray   # int64 (0 when absent)
    status: np.ndarray             # int64
    key_hash: np.ndarray           # uint32 of api_key_id
    net_hash: np.ndarray           # uint32 of the /24 (IPv4) or /48 (IPv6) network, 0 if absent
    asn_hash: np.ndarray           # uint32 of the ASN, 0 if absent
    ua_hash: np.ndarray            # uint32 of the user agent, 0 if absent
    model_hash: np.ndarray         # uint32 of the model name
    prompt_fp: np.ndarray          # uint64 SimHash
    has_fp: np.ndarray             # bool
    cot: np.ndarray                # bool: "cot_request" in flags
    logprobs: np.ndarray           # bool
    logit_bias: np.ndarray         # bool
    dedup_key: np.ndarray          # uint64

    def __len__(self) -> int:
        return len(self.account_ids)

    def take(self, index: np.ndarray) -> RequestColumns:
        """The rows at ``index`` (an int array or a boolean mask), order kept."""
        idx = np.flatnonzero(index) if index.dtype == np.bool_ else index
        ids = self.account_ids
        return RequestColumns(
            [ids[i] for i in idx.tolist()],
            *(getattr(self, name)[idx] for name in _ARRAY_FIELDS),
        )

    @classmethod
    def from_lists(cls, **columns: object) -> RequestColumns:
        """Build from plain lists (tests, simulators); missing optional columns are zeros.

        >>> c = RequestColumns.from_lists(account_ids=["a", "b"], ts=[1, 2])
        >>> len(c), c.status.tolist()
        (2, [200, 200])
        """
        ids = list(columns.pop("account_ids"))  # type: ignore[call-overload]
        n = len(ids)
        defaults: dict[str, tuple[object, type]] = {
            "ts": (0, np.int64), "prompt_tokens": (0, np.int64), "completion_tokens": (0, np.int64),
            "reasoning_tokens": (0, np.int64), "status": (200, np.int64), "key_hash": (0, np.uint32),
            "net_hash": (0, np.uint32), "asn_hash": (0, np.uint32), "ua_hash": (0, np.uint32),
            "model_hash": (0, np.uint32), "prompt_fp": (0, np.uint64), "has_fp": (False, np.bool_),
            "cot": (False, np.bool_), "logprobs": (False, np.bool_), "logit_bias": (False, np.bool_),
            "dedup_key": (0, np.uint64),
        }
        arrays: list[np.ndarray] = []
        for name in _ARRAY_FIELDS:
            fill, dtype = defaults[name]
            if name in columns:
                arrays.append(np.asarray(columns.pop(name), dtype=dtype))
            elif name == "dedup_key":
                arrays.append(np.arange(1, n + 1, dtype=np.uint64))
            else:
                arrays.append(np.full(n, fill, dtype=dtype))
        if columns:
            raise TypeError(f"unknown columns: {sorted(columns)}")
        return cls(ids, *arrays)


_ARRAY_FIELDS = (
    "ts", "prompt_tokens", "completion_tokens", "reasoning_tokens", "status", "key_hash",
    "net_hash", "asn_hash", "ua_hash", "model_hash", "prompt_fp", "has_fp", "cot", "logprobs",
    "logit_bias", "dedup_key",
)
