"""The ledger writer: requests append to an in-process buffer; a background thread bulk-inserts.

The hot path never waits for the database. Rows reach PostgreSQL within ASAHI_LEDGER_FLUSH_SECONDS (or
when ASAHI_LEDGER_BATCH rows are waiting) in one INSERT per batch; ApiKey.last_used_at is refreshed per
batch at most once a minute per key, never as a per-request UPDATE of a hot row. A hard crash can lose
the rows of the last flush interval; a normal shutdown flushes (atexit).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger("asahi.ledger")


@dataclass
class LedgerRow:
    request_id: str
    organization_id: uuid.UUID
    api_key_id: int | None
    endpoint: str
    model: str = ""
    provider: str = ""
    task_type: str = ""
    routing_mode: str = ""
    routing_reason: str = ""
    cache_tier: int = 0
    cache_similarity: float | None = None
    cache_reason: str = ""
    status: str = "ok"
    http_status: int = 200
    error_code: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    baseline_cost_usd: Decimal = Decimal(0)
    latency_ms: float = 0.0
    upstream_latency_ms: float | None = None
    stream: bool = False
    user: str = ""
    temperature: float | None = None
    created_at: datetime = field(default_factory=timezone.now)
    # Stored separately (and deleted after the policy's retention days); None = don't store.
    prompt: str | None = None
    response: str | None = None


@dataclass
class AuditRow:
    action: str
    actor: str
    organization_id: uuid.UUID | None
    target_type: str = ""
    target_id: str = ""
    ip: str | None = None
    request_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=timezone.now)


class LedgerBuffer:
    def __init__(self) -> None:
        self._rows: list[LedgerRow] = []
        self._audit: list[AuditRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self.written = 0

    def append(self, row: LedgerRow) -> None:
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= settings.ASAHI_LEDGER_BATCH
        self._ensure_thread()
        if full:
            self._wake.set()

    def audit(self, row: AuditRow) -> None:
        with self._lock:
            self._audit.append(row)
        self._ensure_thread()

    def pending(self) -> int:
        with self._lock:
            return len(self._rows) + len(self._audit)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="asahi-ledger",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.ASAHI_LEDGER_FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # keep the writer alive; rows stay buffered and are retried
                logger.exception("ledger_flush_failed")
                time.sleep(1.0)
            finally:
                close_old_connections()

    def flush(self) -> int:
        """Write everything buffered; returns the number of ledger rows written."""
        from governance.models import ApiKey, AuditEvent
        from inference.models import InferenceEvent, InferencePayload

        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                audits, self._audit = self._audit, []
            if not rows and not audits:
                return 0
            try:
                with transaction.atomic():
                    InferenceEvent.objects.bulk_create(
                        [InferenceEvent(**{k: v for k, v in vars(r).items()
                                           if k not in ("prompt", "response")}) for r in rows],
                        batch_size=1000,
                    )
                    payloads = [
                        InferencePayload(created_at=r.created_at, request_id=r.request_id,
                                         organization_id=r.organization_id, prompt=r.prompt,
                                         response=r.response or "")
                        for r in rows if r.prompt is not None
                    ]
                    if payloads:
                        InferencePayload.objects.bulk_create(payloads, batch_size=1000)
                    if audits:
                        AuditEvent.objects.bulk_create([AuditEvent(**vars(a)) for a in audits])
                    key_ids = {r.api_key_id for r in rows if r.api_key_id is not None}
                    if key_ids:
                        now = timezone.now()
                        ApiKey.objects.filter(pk__in=key_ids).filter(
                            Q(last_used_at__isnull=True)
                            | Q(last_used_at__lt=now - timedelta(seconds=60))
                        ).update(last_used_at=now)
            except Exception:
                with self._lock:  # put them back in order; the next flush retries
                    self._rows[:0] = rows
                    self._audit[:0] = audits
                raise
            self.written += len(rows)
            return len(rows)


ledger = LedgerBuffer()


@atexit.register
def _flush_at_exit() -> None:
    try:
        ledger.flush()
    except Exception:  # the database may already be gone at interpreter exit
        logger.warning("ledger_flush_at_exit_failed", extra={"pending": ledger.pending()})
