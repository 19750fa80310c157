"""Read side of cache management: per-organization entry counts and hits for `GET /cache/stats`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Sum
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


def cache_stats(*, organization_id: uuid.UUID, window_days: int = 7) -> CacheStats:
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
               .values("cache_tier").annotate(n=Count("id")))
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
