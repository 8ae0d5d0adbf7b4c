"""What the optional account stream (``api.accounts``) says about each account.

Every worker reads the whole compacted topic (no consumer group) in a background thread
and keeps the latest record per account in memory: the payment fingerprint links hydra
accounts, ``created_ts`` says how young an account is. Bad records go to the log and are
skipped; the stream is optional, so a missing topic is not an error.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.connection import KafkaConnection, client_config
from streams.records import AccountRecord, AccountRecordDecoder, Rejection

__all__ = ["AccountRegistry"]

log = logging.getLogger(__name__)
_LOGGED_REJECTIONS = 20     # then only counted (metric xwatch_account_records_rejected_total)


class AccountRegistry:
    def __init__(self, broker: str | KafkaConnection, topic: str, app_id: str = "xwatch") -> None:
        self.broker = broker
        self.topic = topic
        self.app_id = app_id          # its (never committed) group id starts with it: prefixed ACLs
        self.records: dict[str, AccountRecord] = {}
        self.rejected: Counter[str] = Counter()    # bad records skipped, by reason
        self.internal_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = AccountRecordDecoder()

    def get(self, account_id: str) -> AccountRecord | None:
        return self.records.get(account_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one message in (a tombstone deletes); a bad record is counted and skipped."""
        if value is None:
            if key is not None:
                self.records.pop(key.decode(errors="replace"), None)
            return
        rec = self._decoder.decode(value)
        if isinstance(rec, Rejection):
            self.rejected[rec.code] += 1
            if sum(self.rejected.values()) <= _LOGGED_REJECTIONS:
                log.warning("skipping bad account record: %s", rec.reason)
            return
        self.records[rec.account_id] = rec

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xwatch-accounts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        c = Consumer(client_config(self.broker, {"group.id": f"{self.app_id}-accounts-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 200}))
        try:
            assigned = False
            while not self._stop.is_set():
                if not assigned:
                    md = c.list_topics(self.topic, timeout=5).topics.get(self.topic)
                    if md is None or md.error is not None or not md.partitions:
                        self._stop.wait(5)
                        continue
                    c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in md.partitions])
                    assigned = True
                for m in c.consume(1000, 0.5):
                    if not m.error():
                        self._apply_isolated(m.key(), m.value(), m.partition(), m.offset())
        except Exception:  # the stream is optional: log, never take the worker down
            log.exception("account stream reader stopped")
        finally:
            c.close()

    def _apply_isolated(self, key: bytes | None, value: bytes | None, partition: int,
                        offset: int) -> None:
        """:meth:`apply`, where a bug on one record skips that record, loudly, and no more."""
        try:
            self.apply(key, value)
        except Exception:
            self.internal_errors += 1
            log.exception("internal error on account record %s[%d]@%d; skipped", self.topic,
                          partition, offset)
