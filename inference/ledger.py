"""The ledger writer: requests append to an in-process buffer; a background thread bulk-inserts.

The hot path never waits for the database. Rows reach PostgreSQL within ASAHI_LEDGER_FLUSH_SECONDS (or
when ASAHI_LEDGER_BATCH rows are waiting) in one INSERT per batch; ApiKey.last_used_at is refreshed per
batch at most once a minute per key, never as a per-request UPDATE of a hot row. A hard crash can lose
the rows of the last flush interval; a normal shutdown flushes (atexit).

A row that cannot be inserted (a value of the wrong type, a NUL byte in a text) never holds back the
others: a failed batch is split in halves until each bad row stands alone; the good rows are written and
each bad one goes to LedgerDeadLetter (or, if even that fails, to the log with its request id). When the
database cannot be reached the rows go to a bounded spool on local disk (inference.spool: it survives a
crash of the process, and needs neither PostgreSQL nor Redis), moved there every flush interval while
the outage lasts; the writer retries with backoff and, once the database answers, writes the spool
(its own and those left by dead processes) before the newer rows. When the spool is full, or the
disk refuses, rows stay in memory up to ASAHI_LEDGER_MAX_PENDING; beyond that they are dropped,
counted, logged and shown in /health. With nothing buffered the writer sleeps until the next append.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import Q
from django.utils import timezone

from inference import spool as spooling

logger = logging.getLogger("asahi.ledger")

# The database is unreachable or cut the transaction short (connection lost, restart, statement
# timeout, deadlock): the rows are not at fault, so they are kept and retried. Any other error is
# taken to be about the data of some row in the batch, and the batch is split to find it.
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
_RETRY_MAX_SECONDS = 30.0
_ERROR_CHARS = 2000

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


T = TypeVar("T")


@dataclass(frozen=True)
class LedgerError:
    """The last thing that went wrong, without its message (which can quote a row's data)."""

    kind: str  # "row" (set aside as a dead letter) or "database" (rows kept, retried)
    type: str
    at: datetime


@dataclass(frozen=True)
class LedgerState:
    """What this process's writer is doing, for /health (counts since the process started)."""

    pending: int
    written: int
    dead_letters: int
    dropped: int
    failures: int  # consecutive flushes that could not reach the database; 0 when healthy
    last_error: LedgerError | None
    spooled: int = 0  # rows in this process's disk spool, waiting for the database
    spool_bytes: int = 0
    spool_max_bytes: int = 0
    spool_full: bool = False  # a row did not fit in the spool since the database was last reached


class _Interrupted(Exception):
    """The database became unavailable part-way; `remaining` holds what was not handled yet."""

    def __init__(self, remaining: list[Any], cause: Exception) -> None:
        super().__init__(str(cause))
        self.remaining = remaining
        self.cause = cause


def _insert_isolated(items: list[T], *, insert: Callable[[list[T]], None],
                     settle: Callable[[T, Exception], bool]) -> list[T]:
    """Insert `items`, each chunk in its own transaction (a savepoint inside an outer one).

    A chunk that fails with a data error is split in halves, so k bad rows among n cost about
    k*log2(n) extra attempts; a row that fails alone goes to `settle`, which returns whether it was
    written after all. Returns the items written, in order. Raises _Interrupted when the database
    becomes unavailable, with the items not yet handled.
    """
    written: list[T] = []
    stack = [items]  # popped from the end: the first half is pushed last to keep the order
    while stack:
        chunk = stack.pop()
        try:
            try:
                with transaction.atomic():
                    insert(chunk)
                written += chunk
                continue
            except UNAVAILABLE:
                raise
            except Exception as exc:
                error = exc
            if len(chunk) > 1:
                mid = len(chunk) // 2
                stack += [chunk[mid:], chunk[:mid]]
            elif settle(chunk[0], error):
                written.append(chunk[0])
        except UNAVAILABLE as exc:
            raise _Interrupted(chunk + [x for c in reversed(stack) for x in c], exc) from exc
    return written


def _text(value: Any, limit: int) -> str:
    # PostgreSQL text and jsonb refuse NUL; the dead letter must not fail the way the row did.
    try:
        text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text.replace("\x00", "\\x00")[:limit]


def _json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as JSON that PostgreSQL's jsonb accepts: no NUL, no NaN, nothing unserializable."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth < 16 and isinstance(value, dict):
        return {_json_safe(str(k)): _json_safe(v, depth + 1) for k, v in value.items()}
    if depth < 16 and isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, depth + 1) for v in value]
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return _json_safe(text[:_ERROR_CHARS])


def _row_json(row: LedgerRow) -> dict[str, Any]:
    out = {k: _json_safe(v) for k, v in vars(row).items() if k not in ("prompt", "response")}
    for name in ("prompt", "response"):
        text = getattr(row, name, None)
        out[f"{name}_chars"] = len(text) if isinstance(text, str) else None
    return out


def _org_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


class LedgerBuffer:
    def __init__(self) -> None:
        self._rows: list[LedgerRow] = []
        self._audit: list[AuditRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self.written = 0
        self.dead_letters = 0
        self.dropped = 0
        self._dropping = False  # between the first drop and the next successful flush
        self._failures = 0
        self._last_error: LedgerError | None = None
        self._spool: spooling.Spool | None = None
        self._spool_full = False
        self._orphans_checked = 0.0  # monotonic time of the last look for dead processes' spools
        # Called with the rows of each flush once they are written (the dashboard's live feed).
        self._listeners: list[Callable[[list[LedgerRow]], None]] = []

    @property
    def spool(self) -> spooling.Spool:
        if self._spool is None:
            self._spool = spooling.Spool(settings.ASAHI_LEDGER_SPOOL_DIR,
                                         settings.ASAHI_LEDGER_SPOOL_MAX_MB * 2**20)
        return self._spool

    def add_listener(self, listener: Callable[[list[LedgerRow]], None]) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def append(self, row: LedgerRow) -> None:
        with self._lock:
            n = len(self._rows)
            # A settings read costs about as much as the rest of append(): the cap (never below
            # the batch size) is read only once a full batch is waiting.
            full = n + 1 >= settings.ASAHI_LEDGER_BATCH
            if full and n >= settings.ASAHI_LEDGER_MAX_PENDING:
                kept = False
            else:
                kept = True
                self._rows.append(row)
                first = n == 0 and not self._audit
        if not kept:
            self._count_drops("event", 1)
            return
        self._ensure_thread()
        if first or full:  # the first row wakes an idle writer; a full batch cuts its wait short
            self._wake.set()

    def audit(self, row: AuditRow) -> None:
        wake = False
        with self._lock:
            n = len(self._audit)
            kept = n < settings.ASAHI_LEDGER_MAX_PENDING
            if kept:
                self._audit.append(row)
                wake = n == 0 and not self._rows
        if not kept:
            self._count_drops("audit", 1)
            return
        self._ensure_thread()
        if wake:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._rows) + len(self._audit)

    def state(self) -> LedgerState:
        spool = self._spool
        return LedgerState(pending=self.pending(), written=self.written,
                           dead_letters=self.dead_letters, dropped=self.dropped,
                           failures=self._failures, last_error=self._last_error,
                           spooled=spool.rows if spool else 0,
                           spool_bytes=spool.bytes if spool else 0,
                           spool_max_bytes=settings.ASAHI_LEDGER_SPOOL_MAX_MB * 2**20,
                           spool_full=self._spool_full)

    def _count_drops(self, kind: str, rows: int) -> None:
        with self._lock:
            self.dropped += rows
            first, self._dropping = not self._dropping, True
        if first:  # once per outage, not per row; the total is logged when the writer recovers
            logger.error("ledger_buffer_full_dropping_rows", extra={
                "cap": settings.ASAHI_LEDGER_MAX_PENDING, "kind": kind})
        from analytics import metrics

        metrics.count_ledger_dropped(kind=kind, rows=rows)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="asahi-ledger",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        delay, retry_at = 0.0, 0.0
        while True:
            if delay:
                # The database is unreachable: every flush interval what gathered in memory goes
                # to the disk spool (so a crash loses at most one interval); the database is
                # tried again on the backoff.
                self._wake.wait(settings.ASAHI_LEDGER_FLUSH_SECONDS)
                self._wake.clear()
                self.spill()
                if time.monotonic() < retry_at:
                    continue
            else:
                if not self.pending():
                    self._idle()
                self._wake.clear()
                if self.pending() < settings.ASAHI_LEDGER_BATCH:  # let a batch gather
                    self._wake.wait(settings.ASAHI_LEDGER_FLUSH_SECONDS)
                    self._wake.clear()
            close_old_connections()  # one the server closed while we slept is replaced
            try:
                self.flush()
                delay = 0.0
            except UNAVAILABLE as exc:
                delay = min(max(1.0, delay * 2), _RETRY_MAX_SECONDS)
                retry_at = time.monotonic() + delay
                logger.warning("ledger_database_unavailable", extra={
                    "error": type(exc).__name__, "pending": self.pending(),
                    "spooled": self.spool.rows, "retry_in_seconds": delay})
            except Exception:  # a bug in the writer itself: keep it alive, rows stay buffered
                delay = min(max(1.0, delay * 2), _RETRY_MAX_SECONDS)
                retry_at = time.monotonic() + delay
                logger.exception("ledger_flush_failed")
            finally:
                close_old_connections()

    def _idle(self) -> None:
        """Sleep until append() or audit() wakes us: no polling. A connection kept for reuse
        (CONN_MAX_AGE) is handed back once it has aged out, at the cost of one wake-up."""
        max_age = connection.settings_dict.get("CONN_MAX_AGE") or 0  # None: kept for good
        if connection.connection is not None and max_age:
            if self._wake.wait(max_age + 1):
                return
            close_old_connections()
        self._wake.wait()

    def flush(self) -> int:
        """Write everything buffered; returns the number of ledger rows written.

        Rows that cannot be inserted are set aside (dead letters), never retried. Raises the
        database's error when it cannot be reached; the rows not written are then kept."""
        with self._flush_lock:
            try:
                replayed = self._replay_spools()
            except UNAVAILABLE as exc:
                self._keep([], [], exc)  # the memory buffer goes to the spool behind them
                raise
            with self._lock:
                rows, self._rows = self._rows, []
                audits, self._audit = self._audit, []
            if not rows and not audits:
                if self._failures and not replayed:
                    connection.ensure_connection()  # nothing to write: is the database back?
                if replayed or self._failures:
                    self._recovered()
                return replayed
            try:
                done = _insert_isolated(rows, insert=self._insert_rows, settle=self._settle_row)
            except _Interrupted as stop:
                self._keep(stop.remaining, audits, stop.cause)
                raise stop.cause from None
            self.written += len(done)
            try:
                _insert_isolated(audits, insert=self._insert_audits, settle=self._settle_audit)
            except _Interrupted as stop:
                self._keep([], stop.remaining, stop.cause)
                raise stop.cause from None
            self._touch_keys(done)
            self._notify(done)
            self._recovered()
            return replayed + len(done)

    def _recovered(self) -> None:
        with self._lock:
            recovered, self._dropping = self._dropping, False
        if recovered:
            logger.error("ledger_rows_were_dropped", extra={"dropped_total": self.dropped})
        if self._failures:
            logger.warning("ledger_database_reachable_again", extra={"failures": self._failures})
        self._failures = 0
        self._spool_full = False

    def spill(self) -> int:
        """Move what is buffered in memory to the disk spool; returns the rows moved.

        What does not fit (spool full, disk error) stays in memory, within its own cap."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                audits, self._audit = self._audit, []
            if not rows and not audits:
                return 0
            return self._spill(rows, audits)

    def _spill(self, rows: list[LedgerRow], audits: list[AuditRow]) -> int:
        """Spool `rows` and `audits` (older than anything still in memory); keep the rest."""
        items = [spooling.encode("event", r) for r in rows] + \
            [spooling.encode("audit", a) for a in audits]
        try:
            n = self.spool.write(items) if settings.ASAHI_LEDGER_SPOOL_MAX_MB else 0
        except OSError as exc:
            n = 0
            logger.error("ledger_spool_unwritable", extra={
                "error": type(exc).__name__, "dir": str(settings.ASAHI_LEDGER_SPOOL_DIR)})
        if n < len(items) and settings.ASAHI_LEDGER_SPOOL_MAX_MB and not self._spool_full:
            self._spool_full = True  # once per outage; /health shows it until the next flush
            logger.error("ledger_spool_full", extra={
                "spooled": self.spool.rows, "spool_bytes": self.spool.bytes,
                "max_mb": settings.ASAHI_LEDGER_SPOOL_MAX_MB})
        n_rows = min(n, len(rows))
        self._requeue(rows[n_rows:], audits[max(0, n - len(rows)):])
        return n

    def _requeue(self, rows: list[LedgerRow], audits: list[AuditRow]) -> None:
        """Put unwritten rows back in front, in order, within the cap (the newest are dropped)."""
        cap = settings.ASAHI_LEDGER_MAX_PENDING
        excess: dict[str, int] = {}
        with self._lock:
            self._rows[:0] = rows
            self._audit[:0] = audits
            for kind, buffered in (("event", self._rows), ("audit", self._audit)):
                if len(buffered) > cap:
                    excess[kind] = len(buffered) - cap
                    del buffered[cap:]
        for kind, n in excess.items():
            self._count_drops(kind, n)

    _ORPHAN_SCAN_SECONDS = 60.0

    def _replay_spools(self) -> int:
        """Write this process's spool, then any dead process's; returns the ledger rows written.
        Raises the database's error (the rows not written stay spooled)."""
        written = 0
        spool = self._spool
        if spool is not None and spool.rows:
            lines = spool.read_own()
            done, remaining, cause = self._replay(lines)
            spool.rewrite_own(remaining)
            written += done
            if cause is not None:
                raise cause
        now = time.monotonic()
        if now - self._orphans_checked >= self._ORPHAN_SCAN_SECONDS or self._failures:
            self._orphans_checked = now
            for path in self.spool.orphans():
                orphan = spooling.Orphan(path)
                if not orphan.claim():
                    continue
                done, remaining, cause = self._replay(orphan.lines())
                orphan.finish(remaining)
                written += done
                if cause is not None:
                    raise cause
                logger.warning("ledger_spool_replayed", extra={"file": path.name, "rows": done})
        return written

    def _replay(self, lines: list[bytes]) -> tuple[int, list[bytes], Exception | None]:
        """Insert spooled lines; returns the ledger rows written, the lines not handled yet and,
        when the database became unreachable part-way, its error."""
        events: list[tuple[bytes, Any]] = []
        audits: list[tuple[bytes, Any]] = []
        for line in lines:
            try:
                kind, row = spooling.decode(line, {"event": LedgerRow, "audit": AuditRow})
            except Exception as exc:  # a torn last line (crash mid-write): its row is lost
                logger.error("ledger_spool_line_unreadable", extra={
                    "error": type(exc).__name__, "line": _text(line, _ERROR_CHARS)})
                continue
            (events if kind == "event" else audits).append((line, row))
        try:
            done = _insert_isolated(
                events, insert=lambda chunk: self._insert_rows([r for _, r in chunk]),
                settle=lambda item, exc: self._settle_row(item[1], exc))
        except _Interrupted as stop:
            return 0, [line for line, _ in stop.remaining] + [line for line, _ in audits], stop.cause
        self.written += len(done)
        self._touch_keys([r for _, r in done])
        try:
            _insert_isolated(audits, insert=lambda chunk: self._insert_audits([a for _, a in chunk]),
                             settle=lambda item, exc: self._settle_audit(item[1], exc))
        except _Interrupted as stop:
            return len(done), [line for line, _ in stop.remaining], stop.cause
        return len(done), [], None

    def _keep(self, rows: list[LedgerRow], audits: list[AuditRow], cause: Exception) -> None:
        """Rows not written because the database is unreachable: to the spool, else memory."""
        with self._lock:  # newer than `rows`: appended while the failed flush ran
            rows, self._rows = rows + self._rows, []
            audits, self._audit = audits + self._audit, []
        self._spill(rows, audits)
        self._failures += 1
        self._last_error = LedgerError("database", type(cause).__name__, timezone.now())
        self._wake.set()  # if another thread's flush failed, the writer must not sleep on these

    def write_now(self, rows: list[LedgerRow]) -> None:
        """Insert rows synchronously, in the caller's transaction: for work that must record its
        charge atomically with its own state change (batch items), never through the buffer."""
        self._insert_rows(rows)

    @staticmethod
    def _insert_rows(rows: list[LedgerRow]) -> None:
        from inference.models import InferenceEvent, InferencePayload

        InferenceEvent.objects.bulk_create(
            [InferenceEvent(**{k: v for k, v in vars(r).items() if k not in ("prompt", "response")})
             for r in rows],
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

    @staticmethod
    def _insert_audits(audits: list[AuditRow]) -> None:
        from governance.models import AuditEvent

        AuditEvent.objects.bulk_create([AuditEvent(**vars(a)) for a in audits])

    def _settle_row(self, row: LedgerRow, exc: Exception) -> bool:
        """A ledger row that failed alone. Its cost and usage matter more than the stored prompt:
        if it has a payload, try the row without it before setting the whole row aside."""
        if row.prompt is not None:
            try:
                with transaction.atomic():
                    self._insert_rows([_without_payload(row)])
            except UNAVAILABLE:
                raise
            except Exception as alone:
                exc = alone
            else:
                self._dead_letter("payload", row.request_id, row.organization_id, exc,
                                  _row_json(row))
                return True
        self._dead_letter("event", row.request_id, row.organization_id, exc, _row_json(row))
        return False

    def _settle_audit(self, row: AuditRow, exc: Exception) -> bool:
        self._dead_letter("audit", row.request_id, row.organization_id, exc,
                          {k: _json_safe(v) for k, v in vars(row).items()})
        return False

    def _dead_letter(self, kind: str, request_id: Any, organization_id: Any, exc: Exception,
                     row: dict[str, Any]) -> None:
        from analytics import metrics
        from inference.models import LedgerDeadLetter

        error = f"{type(exc).__name__}: {_text(exc, _ERROR_CHARS)}"
        request_id = _text(request_id or "", 128)
        self.dead_letters += 1
        self._last_error = LedgerError("row", type(exc).__name__, timezone.now())
        metrics.count_ledger_dead_letter(kind=kind)
        try:
            with transaction.atomic():
                LedgerDeadLetter.objects.create(kind=kind, request_id=request_id,
                                                organization_id=_org_uuid(organization_id),
                                                error=error, row=row)
        except Exception:  # the log line is then the only record: it carries the whole row
            logger.exception("ledger_dead_letter_unwritable", extra={
                "kind": kind, "request_id": request_id, "error": error, "row": row})
            return
        logger.warning("ledger_row_dead_lettered", extra={
            "kind": kind, "request_id": request_id, "error": error})

    def _notify(self, rows: list[LedgerRow]) -> None:
        for listener in self._listeners:
            try:
                listener(rows)
            except Exception:  # a listener never costs the writer its rows or its thread
                logger.warning("ledger_listener_failed", exc_info=True)

    @staticmethod
    def _touch_keys(rows: list[LedgerRow]) -> None:
        from governance.models import ApiKey

        key_ids = {r.api_key_id for r in rows if r.api_key_id is not None}
        if not key_ids:
            return
        now = timezone.now()
        try:
            ApiKey.objects.filter(pk__in=key_ids).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=60))
            ).update(last_used_at=now)
        except Exception:  # best effort: the rows are written; the next batch refreshes it
            logger.warning("ledger_last_used_at_failed", exc_info=True)


def _without_payload(row: LedgerRow) -> LedgerRow:
    return LedgerRow(**{**vars(row), "prompt": None, "response": None})


ledger = LedgerBuffer()


@atexit.register
def _flush_at_exit() -> None:
    try:
        ledger.flush()
    except Exception:  # the database may already be gone at interpreter exit
        logger.warning("ledger_flush_at_exit_failed", extra={"pending": ledger.pending()})
