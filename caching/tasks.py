"""Celery tasks of the cache (scheduled in asahi_project/celery.py)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="caching.evict_expired")
def evict_expired() -> dict[str, int]:
    """Expired semantic entries and tier-3 rows whose Redis digest has expired."""
    from caching.services import evict_expired as run

    return run()


@shared_task(name="caching.sync_scope_indexes")
def sync_scope_indexes() -> dict[str, list[str]]:
    """Partial HNSW index for every scope past the exact-scan limit; drop those of shrunk scopes."""
    from caching.services import scope_indexes_sync

    report = scope_indexes_sync()
    return {"indexed": report.indexed, "dropped": report.dropped}


@shared_task(name="caching.index_scope")
def index_scope(scope_key: str) -> str | None:
    """Build the partial HNSW index of one scope that outgrew the exact scan (asked for by a
    lookup). Does nothing if the scope is not large (any more); returns the index name otherwise."""
    from caching.services import SCOPE_INDEX_THRESHOLD, scope_index_create, scope_size

    scope = scope_size(scope_key=scope_key)
    if scope is None or scope.rows <= SCOPE_INDEX_THRESHOLD:
        return None
    built = scope_index_create(scope=scope)
    return built.index_name if built else None
