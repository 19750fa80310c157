"""Celery tasks of the cache (scheduled in asahi_project/celery.py)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="caching.evict_expired")
def evict_expired() -> dict[str, int]:
    """Expired semantic entries and tier-3 rows whose Redis digest has expired."""
    from caching.services import evict_expired as run

    return run()
