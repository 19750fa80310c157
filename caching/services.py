"""Write side of cache management: invalidation across the three tiers, audited.

Scopes (`POST /cache/invalidate`, the admin action and tests all come through `cache_invalidate`):

* ``all`` — every exact key, semantic row and tier-3 digest of the organization;
* ``model`` — entries whose answer came from `model` (exact: the stored answer's model; semantic:
  the entry's model; tier 3: the requested model in the key or the model that built the digest);
* ``age`` — entries created more than `older_than_seconds` ago;
* ``entry`` — one entry: an integer `entry_id` is a semantic row id; a 64-hex `entry_id` is an exact
  cache digest and also a document hash (its tier-3 digests are dropped).
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from asahi_project.errors import InvalidRequest
from asahi_project.redis_client import get_sync_redis
from caching import keys
from caching.bridge import EXACT_SCAN_LIMIT
from caching.models import IntermediateResult, SemanticEntry, SemanticScopeIndex

logger = logging.getLogger(__name__)

SCOPES = ("all", "model", "age", "entry")
BATCH = 500
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Invalidation:
    scope: str
    exact_keys: int
    semantic_rows: int
    intermediate_keys: int
    intermediate_rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(items: Iterator[bytes], size: int = BATCH) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _unlink_matching(pattern: str, keep: Callable[[bytes, dict[str, Any] | None], bool] | None,
                     ) -> int:
    """SCAN the pattern and UNLINK the keys `keep` selects (all when None). `keep` gets the key and
    its decoded JSON value (values are read in MGET batches only when a filter needs them)."""
    redis = get_sync_redis()
    removed = 0
    for batch in _batches(redis.scan_iter(match=pattern, count=BATCH)):
        if keep is not None:
            values = redis.mget(batch)
            chosen = []
            for key, raw in zip(batch, values, strict=True):
                try:
                    data = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    data = None
                if keep(key, data):
                    chosen.append(key)
            batch = chosen
        if batch:
            removed += int(redis.unlink(*batch))
    return removed


def _t3_parts(key: bytes) -> tuple[str, str, str]:
    """(document hash, step, model) of a tier-3 key."""
    tail = key.decode().split(":t3:", 1)[1]
    doc_hash, step, model = tail.split(":", 2)
    return doc_hash, step, model


def cache_invalidate(*, organization_id: uuid.UUID, scope: str, actor: str,
                     model: str | None = None, older_than_seconds: int | None = None,
                     entry_id: str | int | None = None, ip: str | None = None) -> Invalidation:
    from governance.services import audit_log

    exact_pattern = keys.exact_pattern(organization_id)
    t3_pattern = keys.intermediate_pattern(organization_id)
    semantic = SemanticEntry.objects.filter(organization_id=organization_id)
    inter = IntermediateResult.objects.filter(organization_id=organization_id)
    if scope == "all":
        exact_n = _unlink_matching(exact_pattern, None)
        t3_n = _unlink_matching(t3_pattern, None)
    elif scope == "model":
        if not model:
            raise InvalidRequest("scope 'model' needs model", param="model")
        exact_n = _unlink_matching(exact_pattern, lambda k, v: bool(v and v.get("model") == model))
        t3_n = _unlink_matching(t3_pattern, lambda k, v: _t3_parts(k)[2] == model
                                or bool(v and v.get("model") == model))
        semantic = semantic.filter(model=model)
        inter = inter.filter(model=model)
    elif scope == "age":
        if older_than_seconds is None or older_than_seconds < 0:
            raise InvalidRequest("scope 'age' needs older_than_seconds >= 0",
                                 param="older_than_seconds")
        cutoff = time.time() - older_than_seconds
        def older(_key: bytes, value: dict[str, Any] | None) -> bool:
            return bool(value and value.get("created", 0) < cutoff)

        exact_n = _unlink_matching(exact_pattern, older)
        t3_n = _unlink_matching(t3_pattern, older)
        since = timezone.now() - timedelta(seconds=older_than_seconds)
        semantic = semantic.filter(created_at__lt=since)
        inter = inter.filter(created_at__lt=since)
    elif scope == "entry":
        ident = str(entry_id or "").strip().lower()
        if ident.isascii() and ident.isdigit():  # str.isdigit() is also true for "²"
            exact_n = t3_n = 0
            semantic = semantic.filter(pk=int(ident))
            inter = inter.none()
        elif _HEX64.match(ident):
            redis = get_sync_redis()
            exact_n = int(redis.unlink(keys.exact_key(organization_id, ident)))
            t3_n = _unlink_matching(t3_pattern, lambda k, v: _t3_parts(k)[0] == ident)
            semantic = semantic.none()
            inter = inter.filter(document_hash=ident)
        else:
            raise InvalidRequest("scope 'entry' needs entry_id: a semantic entry id (integer) or a "
                                 "64-hex exact-cache digest / document hash", param="entry_id")
    else:
        raise InvalidRequest(f"scope must be one of: {', '.join(SCOPES)}", param="scope")
    with transaction.atomic():
        semantic_n, _ = semantic.delete()
        inter_n, _ = inter.delete()
        result = Invalidation(scope=scope, exact_keys=exact_n, semantic_rows=semantic_n,
                              intermediate_keys=t3_n, intermediate_rows=inter_n)
        audit_log(action="cache_invalidated", actor=actor, organization=organization_id,
                  target_type="cache", target_id=scope, ip=ip,
                  details={**result.as_dict(), "model": model,
                           "older_than_seconds": older_than_seconds,
                           "entry_id": str(entry_id) if entry_id is not None else None})
    return result


def evict_expired() -> dict[str, int]:
    """Drop expired semantic rows, and tier-3 rows whose Redis digest has expired."""
    semantic_n, _ = SemanticEntry.objects.filter(expires_at__lte=timezone.now()).delete()
    redis = get_sync_redis()
    stale: list[int] = []
    rows = IntermediateResult.objects.values_list("id", "organization_id", "document_hash", "step",
                                                  "model")
    batch: list[tuple[int, str]] = []
    for pk, org, doc_hash, step, model in rows.iterator(chunk_size=BATCH):
        batch.append((pk, keys.intermediate_key(org, doc_hash, step, model)))
        if len(batch) >= BATCH:
            stale += _missing(redis, batch)
            batch = []
    if batch:
        stale += _missing(redis, batch)
    inter_n = 0
    for i in range(0, len(stale), BATCH):
        n, _ = IntermediateResult.objects.filter(pk__in=stale[i:i + BATCH]).delete()
        inter_n += n
    return {"semantic_rows": semantic_n, "intermediate_rows": inter_n}


def _missing(redis: Any, batch: list[tuple[int, str]]) -> list[int]:
    pipe = redis.pipeline(transaction=False)
    for _pk, key in batch:
        pipe.exists(key)
    return [pk for (pk, _key), present in zip(batch, pipe.execute(), strict=True) if not present]


# --- Scoped vector layout: partial HNSW indexes for large scopes -------------------------------------

SCOPE_INDEX_THRESHOLD = EXACT_SCAN_LIMIT  # rows; smaller scopes are scanned exactly
HNSW_M = 16
# pgvector's default (64) built a 1M-row graph whose recall@1 was 0.72-0.88 at ef_search 80-160 on
# clustered vectors; 128 gave 1.0 at 80, for a 1.5x longer build (350 s against 223-251 s).
HNSW_EF_CONSTRUCTION = 128
# A graph built in memory is far faster than a spilled one (1M x 384d: ~2.3 GB). pgvector sets
# aside the whole maintenance_work_mem up front: 4 GB made a 600-row build take 2.4 s instead of
# 0.15 s, so the budget follows the scope's size.
INDEX_BUILD_BYTES_PER_ROW = 4096
INDEX_BUILD_MEMORY_MB = (64, 4096)  # floor, ceiling
_SCOPE_KEY = re.compile(r"^[0-9a-f]{16}$")
# One graph build or drop at a time on the table. Two concurrent CREATE/DROP INDEX CONCURRENTLY on
# one table deadlock (each waits for the other's transaction), and PostgreSQL then cancels one,
# which was a 1M build 20 minutes in.
GRAPH_DDL_LOCK = "caching_semanticentry:graph-ddl"


@dataclass(frozen=True)
class ScopeSize:
    scope_key: str
    organization_id: uuid.UUID
    model: str
    task_type: str
    embedder: str
    rows: int


@dataclass(frozen=True)
class ScopeIndexReport:
    indexed: list[str]  # every large scope's index after the sync (new or already there)
    dropped: list[str]


def scope_index_name(scope_key: str) -> str:
    if not _SCOPE_KEY.match(scope_key):
        # The key is spliced into DDL (identifiers and the partial-index predicate cannot be bound).
        raise InvalidRequest("scope_key must be 16 lowercase hex digits", param="scope_key")
    return f"semantic_hnsw_{scope_key}"


_SCOPE_SIZES = ("SELECT scope_key, min(organization_id::text), min(model), min(task_type), "
                "min(embedder), count(*) FROM caching_semanticentry {where} GROUP BY scope_key "
                "{having} ORDER BY count(*) DESC")


def _scope_sizes(sql: str, params: list[Any]) -> list[ScopeSize]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [ScopeSize(scope_key=r[0], organization_id=uuid.UUID(r[1]), model=r[2],
                          task_type=r[3], embedder=r[4], rows=int(r[5])) for r in cur.fetchall()]


def large_scopes(*, threshold: int = SCOPE_INDEX_THRESHOLD) -> list[ScopeSize]:
    """Scopes holding more than `threshold` rows (live or not: expired rows still sit in the graph)."""
    return _scope_sizes(_SCOPE_SIZES.format(where="", having="HAVING count(*) > %s"), [threshold])


def scope_size(*, scope_key: str) -> ScopeSize | None:
    found = _scope_sizes(_SCOPE_SIZES.format(where="WHERE scope_key = %s", having=""), [scope_key])
    return found[0] if found else None


def _index_state(cur: Any, name: str) -> tuple[bool, frozenset[str]] | None:
    """(valid, storage options such as "m=16") of an index, None when it does not exist."""
    cur.execute("SELECT i.indisvalid, c.reloptions FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s", [name])
    row = cur.fetchone()
    return None if row is None else (bool(row[0]), frozenset(row[1] or ()))


def graph_options() -> frozenset[str]:
    """The storage options a scope graph is built with; a graph built with others is rebuilt."""
    return frozenset({f"m={HNSW_M}", f"ef_construction={HNSW_EF_CONSTRUCTION}"})


def index_build_memory_mb(rows: int) -> int:
    floor, ceiling = INDEX_BUILD_MEMORY_MB
    return max(floor, min(ceiling, -(-rows * INDEX_BUILD_BYTES_PER_ROW // 2**20)))


@functools.cache
def _parallel_builds_safe() -> bool:
    """pgvector before 0.7.4 has a locking bug in parallel HNSW builds ("Fixed locking for parallel
    HNSW index builds"); with 0.6.2, the version pgserver ships, one of ~1,000 small-scope builds
    crashed the server (a backend segfault resets every connection). Older versions build serially."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cur.fetchone()
    return parallel_build_safe(row[0] if row else "")


def parallel_build_safe(pgvector_version: str) -> bool:
    return tuple(int(p) for p in re.findall(r"\d+", pgvector_version)[:3]) >= (0, 7, 4)


def _build_graph(cur: Any, *, name: str, scope_key: str, rows: int, concurrently: bool) -> None:
    cur.execute(f"SET maintenance_work_mem = '{index_build_memory_mb(rows)}MB'")
    if not _parallel_builds_safe():
        cur.execute("SET max_parallel_maintenance_workers = 0")
    try:
        cur.execute(
            f'CREATE INDEX {"CONCURRENTLY " if concurrently else ""}"{name}" '
            f"ON caching_semanticentry USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
            f"WHERE scope_key = '{scope_key}'")
    finally:
        cur.execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")


@contextmanager
def _graph_ddl_lock(cur: Any) -> Iterator[bool]:
    """Try the table-wide graph lock (GRAPH_DDL_LOCK); yields whether this session holds it."""
    cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [GRAPH_DDL_LOCK])
    locked = bool(cur.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", [GRAPH_DDL_LOCK])


def _drop(cur: Any, name: str, *, concurrently: bool) -> None:
    cur.execute(f'DROP INDEX {"CONCURRENTLY " if concurrently else ""}IF EXISTS "{name}"')


def scope_index_create(*, scope: ScopeSize, concurrently: bool = True,
                       ) -> SemanticScopeIndex | None:
    """Build the partial HNSW index of one scope and record it (idempotent).

    CONCURRENTLY keeps inserts into the table flowing during the build; it cannot run inside a
    transaction, so callers must be in autocommit mode (Celery tasks and management commands are).
    A failed concurrent build leaves an invalid index behind: it is dropped and rebuilt. A valid
    graph built with other options (an upgrade changed m or ef_construction) is rebuilt beside the
    old one, which keeps serving lookups until the new one replaces it. Returns None when another
    session holds the graph lock (it is building or dropping a graph; the next sync retries)."""
    from django.db import connection

    name = scope_index_name(scope.scope_key)
    started = time.perf_counter()
    with connection.cursor() as cur, _graph_ddl_lock(cur) as locked:
        if not locked:
            return None
        state = _index_state(cur, name)
        valid, options = state if state is not None else (False, frozenset())
        existing = SemanticScopeIndex.objects.filter(scope_key=scope.scope_key).first()
        if valid and options == graph_options():
            if existing is not None:
                return existing
        elif valid:
            # Built with other options. Both graphs carry the scope's predicate, so the planner
            # may use either while they coexist; the rename only touches the catalogue.
            fresh = f"{name}_next"
            _drop(cur, fresh, concurrently=concurrently)  # a leftover of a failed run
            _build_graph(cur, name=fresh, scope_key=scope.scope_key, rows=scope.rows,
                         concurrently=concurrently)
            _drop(cur, name, concurrently=concurrently)
            cur.execute(f'ALTER INDEX "{fresh}" RENAME TO "{name}"')
            logger.info("scope %s: graph rebuilt with %s (was %s)", scope.scope_key,
                        sorted(graph_options()), sorted(options))
        else:
            if state is not None:  # invalid: a failed concurrent build
                _drop(cur, name, concurrently=concurrently)
            _build_graph(cur, name=name, scope_key=scope.scope_key, rows=scope.rows,
                         concurrently=concurrently)
        record, _ = SemanticScopeIndex.objects.update_or_create(
            scope_key=scope.scope_key,
            defaults={"index_name": name, "organization_id": scope.organization_id,
                      "model": scope.model, "task_type": scope.task_type,
                      "embedder": scope.embedder, "rows_at_creation": scope.rows,
                      "build_seconds": round(time.perf_counter() - started, 3)})
        return record


def scope_index_drop(*, scope_key: str, concurrently: bool = True) -> bool:
    """Forget the record first (lookups fall back to the exact scan), then drop the index.
    False when another session holds the graph lock (the next sync drops it)."""
    from django.db import connection

    name = scope_index_name(scope_key)
    with connection.cursor() as cur, _graph_ddl_lock(cur) as locked:
        if locked:
            SemanticScopeIndex.objects.filter(scope_key=scope_key).delete()
            _drop(cur, name, concurrently=concurrently)
        return locked


def scope_indexes_sync(*, threshold: int = SCOPE_INDEX_THRESHOLD,
                       concurrently: bool = True) -> ScopeIndexReport:
    """Index every scope above `threshold`; drop indexes of scopes shrunk below half of it (the
    gap keeps a scope hovering around the threshold from being rebuilt over and over)."""
    large = large_scopes(threshold=threshold // 2)
    built = [scope_index_create(scope=s, concurrently=concurrently)
             for s in large if s.rows > threshold]
    indexed = [b.index_name for b in built if b is not None]
    keep = {s.scope_key for s in large}
    dropped: list[str] = []
    for key in SemanticScopeIndex.objects.exclude(scope_key__in=keep).values_list("scope_key",
                                                                                   flat=True):
        if scope_index_drop(scope_key=key, concurrently=concurrently):
            dropped.append(scope_index_name(key))
    return ScopeIndexReport(indexed=indexed, dropped=dropped)
