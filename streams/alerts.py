"""The alert record of the contract (``xwatch.alert/v1``) and its encoding."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ALERT_SCHEMA", "Alert", "decode_alert", "encode_alert"]

ALERT_SCHEMA = "xwatch.alert/v1"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert event on ``abuse.alerts``; field meanings are in README's contract section."""

    schema: str = ALERT_SCHEMA
    alert_id: str
    status: Literal["firing", "resolved"]
    rule: str
    severity: Literal["info", "warning", "critical"]
    account_ids: list[str]
    score: float
    threshold: float
    window_start_ts: int
    window_end_ts: int
    detected_at: int
    summary: str
    evidence: dict[str, Any]

    @property
    def key(self) -> str:
        """Kafka key: the account, or the cluster id for multi-account alerts."""
        if len(self.account_ids) == 1:
            return self.account_ids[0]
        return str(self.evidence.get("cluster_id", self.alert_id))


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Alert)


def encode_alert(alert: Alert) -> bytes:
    return _encoder.encode(alert)


def decode_alert(raw: bytes) -> Alert:
    return _decoder.decode(raw)
