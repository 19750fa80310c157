"""The pipeline's entry to tier 2 (semantic): embed, scoped nearest-neighbour lookup, decide, store.

The caller (inference's pipeline) passes plain values: the prompt text it found eligible (one
user turn, no tools), and a :class:`SemanticScope`; it gets a :class:`SemanticOutcome` back. This
app never imports the pipeline's types, so the dependency runs one way.

Embeddings are coalesced (`caching.semantic.batcher`) under a time budget; when the embedder is
slow or down the tier is skipped (`semantic_bypass`) and the request goes on. Stores happen after
the answer is on its way: a writer thread inserts them in batches, reusing the lookup's vector.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone
from psycopg import errors as psycopg_errors

from caching.exact import CachedAnswer

logger = logging.getLogger("asahi.cache")
EMBED_BUDGET_SECONDS = 0.5
# During a database outage every request would log the same failure: once per this many seconds.
OUTAGE_LOG_SECONDS = 30.0
# Scopes without a partial HNSW index are scanned exactly; past this size a worker builds one
# (the same number as caching.services.SCOPE_INDEX_THRESHOLD, which the periodic sync uses).
# Scanning costs ~1.5 us per row on 2 cores (1k rows 1.4-1.8 ms, 5k 6-7 ms) while a scope's own
# HNSW graph answers 50k rows in 1.3-2.3 ms, so scopes past 1k rows get a graph.
EXACT_SCAN_LIMIT = 1_000
# An unindexed scope larger than this (no worker running, or its index still building) is scanned
# over its newest entries only: a lookup's cost stays bounded (~15 ms at 5k rows) instead of
# growing with the scope (a 26k-row scope took 70-85 ms idle, ~200 ms under load, in a soak
# whose stack had no worker). Older entries are found again once the index exists.
EXACT_SCAN_CAP = 5 * EXACT_SCAN_LIMIT
# HNSW candidates per lookup. With graphs built at ef_construction 128 (caching.services) a 1M-row
# scope gave recall@1 1.0 against an exact scan at 80, p99 2.9-3.2 ms (160: 4.1-4.5 ms).
EF_SEARCH = 80
INDEX_CHECK_SECONDS = 60.0
# Unindexed scopes are re-checked sooner: one that outgrows EXACT_SCAN_LIMIT asks for its index
# within this long and switches to it this long after a worker built it. With one 60 s memo a new
# organization's growing scope was scanned exactly for up to two minutes (a minute to notice its
# size, another to notice its index), at up to 7 ms of database CPU a lookup. The check is one
# ~0.2 ms query per scope and process every few seconds.
UNINDEXED_CHECK_SECONDS = 5.0
NEIGHBOURS = 3


@dataclass(frozen=True)
class SemanticScope:
    """Where a prompt is looked up and stored, and the policy values that govern it."""

    org_id: uuid.UUID
    model: str
    task_type: str
    ttl_seconds: int
    threshold: float | None = None  # the policy's override of the calibrated one


@dataclass
class SemanticOutcome:
    """What the tier did for ``query`` in ``scope``: a hit (answer, similarity), or why not; and
    the vector, which the store after a miss reuses."""

    query: str
    scope: SemanticScope
    reason: str = ""
    answer: CachedAnswer | None = None
    similarity: float | None = None
    vector: tuple[str, Any] | None = None  # (embedder id, vector)
    bypassed: bool = False  # skipped because the embedder or the database failed
    embed_ms: float = 0.0
    lookup_ms: float = 0.0


def _embedder() -> Any | None:
    try:
        from caching.semantic.embedders import get_semantic_embedder

        return get_semantic_embedder(settings.ASAHI_SEMANTIC_EMBEDDER)
    except Exception as exc:  # missing artefact or package: the tier is off, the request goes on
        logger.warning("semantic_embedder_unavailable", extra={"error": repr(exc)})
        return None


def embedder_id(embedder: Any) -> str:
    return f"{embedder.name}:{embedder.version}"


# Lookups and stores run in executor threads, where no request signal enforces CONN_MAX_AGE or
# drops a broken connection, so they call close_old_connections() themselves. That also re-arms
# Django's connection health check, a SELECT 1 round trip before the next query (~0.1-0.3 ms of
# a ~1.5 ms lookup), so after a success it runs at most every RELEASE_SECONDS per thread.
RELEASE_SECONDS = 5.0
_released = threading.local()


def _release_connection(*, failed: bool = False) -> None:
    if connection.in_atomic_block:
        return  # the caller's transaction owns the connection; closing it would break that
    now = time.monotonic()
    due = now - getattr(_released, "at", float("-inf")) >= RELEASE_SECONDS
    if failed or due or connection.settings_dict.get("CONN_MAX_AGE") == 0:
        _released.at = now
        close_old_connections()


def _vector_literal(vector: Any) -> str:
    return "[" + ",".join(f"{float(x):.6f}" for x in vector) + "]"


_indexed_scopes: dict[str, tuple[bool, float]] = {}  # scope_key -> (has index, checked at)
_index_requested: dict[str, float] = {}


def _scope_indexed(cur: Any, scope_key: str) -> bool:
    """Whether the scope has a partial HNSW index, memoised per process: INDEX_CHECK_SECONDS once
    it has one (a dropped index still answers exactly, see nearest), UNINDEXED_CHECK_SECONDS
    until then. The same round trip sizes an unindexed scope, and asks for an index once it is
    too large."""
    now = time.monotonic()
    cached = _indexed_scopes.get(scope_key)
    if cached is not None:
        indexed, checked_at = cached
        if now - checked_at < (INDEX_CHECK_SECONDS if indexed else UNINDEXED_CHECK_SECONDS):
            return indexed
    cur.execute("SELECT EXISTS (SELECT 1 FROM caching_semanticscopeindex WHERE scope_key = %s), "  # noqa: S608
                "(SELECT count(*) FROM (SELECT 1 FROM caching_semanticentry WHERE scope_key = %s "
                f"LIMIT {EXACT_SCAN_LIMIT + 1}) s)", [scope_key, scope_key])
    indexed, size = cur.fetchone()
    _indexed_scopes[scope_key] = (bool(indexed), now)
    if not indexed and size > EXACT_SCAN_LIMIT:
        _request_index(scope_key)
    return bool(indexed)


def _request_index(scope_key: str) -> None:
    """An unindexed scope outgrew the exact-scan limit: ask a worker to build its index (at most
    once per INDEX_CHECK_SECONDS per process; the task itself is idempotent)."""
    now = time.monotonic()
    if now - _index_requested.get(scope_key, -INDEX_CHECK_SECONDS) < INDEX_CHECK_SECONDS:
        return
    _index_requested[scope_key] = now
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # no worker: an eager build would block this lookup for seconds
    try:
        from caching.tasks import index_scope

        index_scope.delay(scope_key)
    except Exception as exc:  # no broker: the periodic sync builds it later
        logger.warning("semantic_index_request_failed", extra={"error": repr(exc)})


# Prepared lookups. With many indexed scopes the planner dominates a lookup: it locks every
# index of the table and tests each partial predicate, so 1,000 scope graphs added 11-14 ms to
# every lookup, exact or indexed. A statement prepared per scope keeps one generic plan per
# connection (planning 0.09 ms); an index created or dropped later invalidates it, and the next
# EXECUTE plans again under the same settings. PREPARE is not undone by a rollback, so the
# bookkeeping is per connection, not per transaction.
PREPARED_PER_CONNECTION = 512
_prepared: weakref.WeakKeyDictionary[Any, OrderedDict[str, None]] = weakref.WeakKeyDictionary()
_prepared_lock = threading.Lock()


def _prepared_on(raw: Any) -> OrderedDict[str, None]:
    with _prepared_lock:
        return _prepared.setdefault(raw, OrderedDict())


def _rows_of(cur: Any) -> list[tuple[int, str, dict[str, Any], float]]:
    """The lookup's rows: the result set after the settings (and any PREPARE) statements."""
    while cur.description is None or cur.description[0].name != "id":
        cur.nextset()
    return [(r[0], r[1], r[2], 1.0 - float(r[3])) for r in cur.fetchall()]


def _prepare_sql(name: str, *, scope_key: str, k: int, indexed: bool) -> str:
    # Ordering by the output column computes the distance once; it is still `embedding <=> $1`,
    # which is what lets the planner use an HNSW index. The scope_key literal (hex by
    # construction) is what lets it match the scope's partial index.
    rows = (f"caching_semanticentry WHERE scope_key = '{scope_key}' AND organization_id = $2 "
            "AND model = $3 AND task_type = $4 AND embedder = $5 AND expires_at > now()")
    if not indexed:  # an exact scan reads the newest EXACT_SCAN_CAP rows only
        rows = (f"(SELECT id, prompt, answer, embedding FROM {rows} "  # noqa: S608
                f"ORDER BY id DESC LIMIT {EXACT_SCAN_CAP}) newest")
    return (f"PREPARE {name}(vector, uuid, text, text, text) AS "  # noqa: S608
            f"SELECT id, prompt, answer, embedding <=> $1 AS distance FROM {rows} "
            f"ORDER BY distance LIMIT {int(k)}; ")


def nearest(*, org_id: uuid.UUID, model: str, task_type: str, embedder: str, vector: Any,
            k: int = NEIGHBOURS, ef_search: int = EF_SEARCH,
            ) -> list[tuple[int, str, dict[str, Any], float]]:
    """(id, prompt, answer, cosine similarity) of the k nearest live entries in the scope.

    Scopes without a partial HNSW index are scanned exactly (through the scope_key btree); one
    past EXACT_SCAN_LIMIT rows asks a worker for an index (`caching.index_scope`). Indexed
    scopes walk their own graph: the scope_key literal in the statement lets the planner match the
    partial index predicate; the other scope columns stay as a safety filter."""
    from caching.models import scope_key_of

    key = scope_key_of(organization_id=org_id, model=model, task_type=task_type,
                       embedder=embedder)
    params: list[Any] = [_vector_literal(vector), org_id, model, task_type, embedder]
    try:
        with connection.cursor() as cur:
            indexed = _scope_indexed(cur, key)
            # Only the HNSW order has no sort: with sorts and seq scans priced out the planner
            # takes the partial index even where it misjudges a plain scan cheaper. The exact path
            # keeps them: a scope_key btree scan, then a top-k sort.
            local: dict[str, tuple[str, str | None]] = {
                "plan_cache_mode": ("force_generic_plan", "auto")}
            if indexed:
                # ef_search is only read by HNSW scans, so it needs no switching back.
                local |= {"hnsw.ef_search": (str(int(ef_search)), None),
                          "enable_sort": ("off", "on"), "enable_seqscan": ("off", "on")}
            name = f"asahi_nn_{key}_{'h' if indexed else 'x'}{int(k)}"  # key is hex by construction
            # One round trip: several statements in one query string run as one implicit
            # transaction, so the local settings hold for the lookup and lapse with it (BEGIN,
            # set, query, COMMIT as four round trips cost ~0.2-0.5 ms more). Inside an outer
            # transaction they would outlive the lookup, so the same string switches them back.
            sets = ", ".join(f"set_config('{n}', '{v[0]}', true)" for n, v in local.items())
            reset = ("; SELECT " + ", ".join(f"set_config('{n}', '{v[1]}', true)"
                                             for n, v in local.items() if v[1] is not None)
                     if connection.in_atomic_block else "")
            execute = f"EXECUTE {name}(%s::vector, %s, %s, %s, %s)"
            if not settings.DB_PREPARED_LOOKUPS:  # prepare, run and forget in one transaction
                statement = _prepare_sql(name, scope_key=key, k=k, indexed=indexed)
                cur.execute(f"SELECT {sets}; {statement}{execute}; "
                            f"DEALLOCATE {name}{reset}", params)
                return _rows_of(cur)
            prepared = _prepared_on(connection.connection)
            for attempt in (1, 2):
                prepare = ""
                if name not in prepared:
                    if len(prepared) >= PREPARED_PER_CONNECTION:
                        prepare = f"DEALLOCATE {prepared.popitem(last=False)[0]}; "
                    prepare += _prepare_sql(name, scope_key=key, k=k, indexed=indexed)
                try:
                    cur.execute(f"SELECT {sets}; {prepare}{execute}{reset}", params)
                    break
                except Exception as exc:
                    if not isinstance(exc.__cause__, psycopg_errors.DuplicatePreparedStatement):
                        prepared.pop(name, None)  # prepared or not: the next call finds out
                        raise
                    prepared[name] = None  # prepared by a call whose bookkeeping was lost
                    if attempt == 2 or connection.in_atomic_block:  # an aborted outer transaction
                        raise
            prepared[name] = None
            prepared.move_to_end(name)
            return _rows_of(cur)
    except Exception:
        _release_connection(failed=True)
        raise
    finally:
        _release_connection()


def _lookup_sync(scope: SemanticScope, embedder: Any, vector: Any, query: str,
                 out: SemanticOutcome) -> SemanticOutcome:
    from caching.semantic.decision import UNCALIBRATED, Thresholds, decide, thresholds_for
    from caching.semantic.embedders import LocalMiniLMEmbedder

    task = scope.task_type
    # The shipped thresholds were calibrated on the local embedder's cosines; another embedder's
    # cosines live on another scale, so it gets strict ones until a policy sets its own.
    base = thresholds_for(task) if embedder.name == LocalMiniLMEmbedder.name else UNCALIBRATED
    override = scope.threshold
    thresholds = Thresholds(high=override, low=min(base.low, override)) if override else base
    rows = nearest(org_id=scope.org_id, model=scope.model, task_type=task,
                   embedder=embedder_id(embedder), vector=vector)
    refusals: list[str] = []
    for entry_id, prompt, answer, similarity in rows:
        decision = decide(query=query, candidate=prompt, similarity=similarity, task_type=task,
                          thresholds=thresholds, languages=settings.ASAHI_SEMANTIC_LANGUAGES)
        if decision.hit:
            from caching.models import SemanticEntry

            try:
                SemanticEntry.objects.filter(pk=entry_id).update(hit_count=F("hit_count") + 1,
                                                                 last_hit_at=timezone.now())
            except Exception:
                _release_connection(failed=True)
                raise
            # Raw SQL returns jsonb as text.
            out.answer = CachedAnswer(**(orjson.loads(answer) if isinstance(answer, str)
                                         else answer))
            out.similarity, out.reason = similarity, decision.reason
            return out
        refusals.append(decision.reason)
        if similarity < thresholds.low:
            break
    # The nearest stored prompt's refusal says the most about why this request missed.
    out.reason = refusals[0] if refusals else "miss: nothing stored in this scope yet"
    return out


_lookup_outage_logged = float("-inf")


async def semantic_lookup(query: str, scope: SemanticScope) -> SemanticOutcome:
    """Tier 2 for one eligible prompt. Never raises: a failure is a bypass, and the request goes
    on to the upstream."""
    from caching.semantic.batcher import batcher_for
    from caching.semantic.coverage import outside

    uncovered = outside(query, settings.ASAHI_SEMANTIC_LANGUAGES)
    if uncovered is not None:  # exact tier only; nothing embedded, so nothing stored either
        return SemanticOutcome(query, scope, reason=f"semantic tier off: {uncovered}")
    embedder = _embedder()
    if embedder is None:
        return SemanticOutcome(query, scope, bypassed=True,
                               reason="semantic_bypass: no embedder could be loaded")
    out = SemanticOutcome(query, scope)
    started = time.perf_counter()
    try:
        future = batcher_for(embedder).submit(query)
        try:
            vector = await asyncio.wait_for(asyncio.wrap_future(future), EMBED_BUDGET_SECONDS)
        except TimeoutError:
            future.cancel()  # still queued: the batcher skips it
            raise
        out.vector = (embedder_id(embedder), vector)
        looked = time.perf_counter()
        out.embed_ms = (looked - started) * 1000
        await asyncio.to_thread(_lookup_sync, scope, embedder, vector, query, out)
        out.lookup_ms = (time.perf_counter() - looked) * 1000
        return out
    except Exception as exc:  # slow or failed embedder/DB: skip the tier, never fail the request
        global _lookup_outage_logged
        now = time.monotonic()
        if not isinstance(exc, OperationalError | InterfaceError):
            logger.warning("semantic_bypass", extra={"error": repr(exc)})
        elif now - _lookup_outage_logged >= OUTAGE_LOG_SECONDS:
            _lookup_outage_logged = now
            logger.warning("semantic_bypass_database_unavailable", extra={"error": repr(exc)})
        out.bypassed = True
        out.reason = ("semantic_bypass: embedding took longer than "
                      f"{EMBED_BUDGET_SECONDS} s" if isinstance(exc, TimeoutError)
                      else f"semantic_bypass: {type(exc).__name__}")
        return out


# --- Stores ---------------------------------------------------------------------------------------

@dataclass
class _Store:
    outcome: SemanticOutcome  # a miss's lookup: prompt, scope and vector
    answer: CachedAnswer


class StoreWriter:
    """Inserts new entries after their answers were sent: one thread, one multi-row INSERT per
    batch (a single-row ORM create cost ~3 ms of a request's time on 2 cores, in a thread that
    competed with the next request)."""

    MAX_BATCH = 256

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Store] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0
        self._thread: threading.Thread | None = None
        self.dropped = 0  # entries lost to an unreachable database
        self._outage_logged = float("-inf")

    def put(self, item: _Store) -> None:
        with self._lock:
            self._outstanding += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="asahi-semantic-store",
                                                daemon=True)
                self._thread.start()
        self._queue.put(item)

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until every queued store is written (tests and graceful shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def _run(self) -> None:
        from caching.semantic.batcher import take_batch

        while True:
            batch = take_batch(self._queue, self.MAX_BATCH)
            try:
                self._write(batch)
            finally:
                with self._idle:
                    self._outstanding -= len(batch)
                    self._idle.notify_all()

    def _write(self, batch: list[_Store]) -> None:
        from caching.models import SemanticEntry

        now = timezone.now()
        entries = []
        for item in batch:
            assert item.outcome.vector is not None  # semantic_store queues only embedded prompts
            scope, (embedder, vector) = item.outcome.scope, item.outcome.vector
            # scope_key is set by the table's insert trigger (bulk inserts skip save()).
            entries.append(SemanticEntry(
                organization_id=scope.org_id, model=scope.model, task_type=scope.task_type,
                embedder=embedder, embedding=list(map(float, vector)), prompt=item.outcome.query,
                answer=item.answer.__dict__,
                expires_at=now + timedelta(seconds=scope.ttl_seconds),
            ))
        try:
            SemanticEntry.objects.bulk_create(entries)
        except (OperationalError, InterfaceError) as exc:
            # The database is unreachable: one-by-one retries would fail alike, so the batch is
            # dropped (a cache entry, not a charge) with one log line per outage, not per request.
            _release_connection(failed=True)
            self.dropped += len(entries)
            tick = time.monotonic()
            if tick - self._outage_logged >= OUTAGE_LOG_SECONDS:
                self._outage_logged = tick
                logger.warning("semantic_store_database_unavailable",
                               extra={"error": type(exc).__name__, "dropped_total": self.dropped})
        except Exception:
            # A cache entry is worth less than the batch: retry one by one, drop what fails.
            _release_connection(failed=True)
            for entry in entries:
                try:
                    entry.save()
                except Exception:
                    logger.exception("semantic_store_failed")
                    _release_connection(failed=True)
        finally:
            _release_connection()


store_writer = StoreWriter()


def semantic_store(outcome: SemanticOutcome, answer: CachedAnswer) -> None:
    """Queue the entry for a miss's answer, with the vector its lookup computed (a prompt that
    was never embedded, e.g. outside the tier's languages, is not stored)."""
    if outcome.vector is not None:
        store_writer.put(_Store(outcome=outcome, answer=answer))
