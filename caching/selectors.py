"""Read side of cache management: per-organization entry counts and hits for `GET /cache/stats`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Sum
from django.utils import timezone

from asahi_project.redis_client import get_sync_redis
from caching import keys
from caching.models import IntermediateResult, SemanticEntry

SCAN_BATCH = 1_000


def count_keys(pattern: str) -> int:
    """Keys matching a pattern, by SCAN (never KEYS: it would block Redis on a large keyspace)."""
    redis = get_sync_redis()
    return sum(1 for _ in redis.scan_iter(match=pattern, count=SCAN_BATCH))


@dataclass(frozen=True)
class CacheStats:
    organization_id: uuid.UUID
    exact_entries: int
    semantic_entries: int
    semantic_expired: int
    semantic_hits: int
    intermediate_entries: int  # digests live in Redis
    intermediate_rows: int  # bookkeeping rows (may outlive an expired digest until eviction)
    intermediate_hits: int
    intermediate_tokens_saved: int
    window_days: int
    requests_by_tier: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        total = sum(self.requests_by_tier.values())
        hits = total - self.requests_by_tier.get("miss", 0)
        return round(hits / total, 4) if total else 0.0


def cache_stats(*, organization_id: uuid.UUID, window_days: int = 7,
                with_requests: bool = True) -> CacheStats:
    """Entries and hits; `with_requests=False` skips the ledger count of requests per tier (the
    console reads those from the analytics rollups instead)."""
    from inference.models import InferenceEvent
    from inference.pipeline import TIER_NAMES

    now = timezone.now()
    semantic = SemanticEntry.objects.filter(organization_id=organization_id)
    live = semantic.filter(expires_at__gt=now)
    inter = IntermediateResult.objects.filter(organization_id=organization_id).aggregate(
        rows=Count("id"), hits=Sum("hit_count"), saved=Sum("tokens_saved"))
    by_tier = (InferenceEvent.objects
               .filter(organization_id=organization_id, status="ok",
                       created_at__gte=now - timedelta(days=window_days))
               .values("cache_tier").annotate(n=Count("id"))) if with_requests else []
    return CacheStats(
        organization_id=organization_id,
        exact_entries=count_keys(keys.exact_pattern(organization_id)),
        semantic_entries=live.count(),
        semantic_expired=semantic.filter(expires_at__lte=now).count(),
        semantic_hits=live.aggregate(h=Sum("hit_count"))["h"] or 0,
        intermediate_entries=count_keys(keys.intermediate_pattern(organization_id)),
        intermediate_rows=inter["rows"] or 0,
        intermediate_hits=inter["hits"] or 0,
        intermediate_tokens_saved=inter["saved"] or 0,
        window_days=window_days,
        requests_by_tier={TIER_NAMES.get(r["cache_tier"], str(r["cache_tier"])): r["n"]
                          for r in by_tier},
    )


@dataclass(frozen=True)
class StoredPrompt:
    id: int
    prompt: str
    model: str
    task_type: str
    hit_count: int
    created_at: datetime
    expires_at: datetime


def search_prompts(*, organization_id: uuid.UUID, query: str = "", limit: int = 50,
                   ) -> list[StoredPrompt]:
    """Live semantic-cache entries of one organization whose prompt contains `query`, newest first."""
    qs = SemanticEntry.objects.filter(organization_id=organization_id,
                                      expires_at__gt=timezone.now())
    if query:
        qs = qs.filter(prompt__icontains=query)
    return [StoredPrompt(**row) for row in qs.order_by("-created_at").values(
        "id", "prompt", "model", "task_type", "hit_count", "created_at", "expires_at")[:limit]]


@dataclass(frozen=True)
class CachedDocument:
    document_hash: str
    steps: int
    hits: int
    tokens_saved: int
    created_at: datetime


def cached_documents(*, organization_id: uuid.UUID, limit: int = 50) -> list[CachedDocument]:
    """Tier-3 documents of one organization (by the SHA-256 of their text), latest first."""
    rows = (IntermediateResult.objects.filter(organization_id=organization_id)
            .values("document_hash")
            .annotate(steps=Count("id"), hits=Sum("hit_count"), saved=Sum("tokens_saved"),
                      created=Max("created_at"))
            .order_by("-created")[:limit])
    return [CachedDocument(document_hash=r["document_hash"], steps=r["steps"], hits=r["hits"] or 0,
                           tokens_saved=r["saved"] or 0, created_at=r["created"]) for r in rows]


def semantic_thresholds() -> dict[str, Any]:
    """The calibrated similarity bands per task type (`high`, `low`, verifier probability) that
    apply when a policy sets no threshold of its own."""
    from caching.semantic.decision import DEFAULT_THRESHOLDS

    return dict(sorted(DEFAULT_THRESHOLDS.items()))
