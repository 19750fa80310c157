"""Ledger seeding for analytics tests: real InferenceEvent rows over past days and the current hour."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from inference.models import InferenceEvent

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5")
TASKS = ("qa", "code", "summarization")
STATUSES = ("ok",) * 8 + ("error", "rate_limited")


def seed_events(*, org_id: uuid.UUID, key_ids: list[int | None], start: datetime, end: datetime,
                count: int, seed: int = 0) -> list[InferenceEvent]:
    """`count` events with created_at uniformly in [start, end), odd-cent costs, mixed tiers."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    rows = []
    for i in range(count):
        status = rng.choice(STATUSES)
        tier = rng.choice((0, 0, 0, 1, 2, 3)) if status == "ok" else 0
        cost = Decimal(rng.randint(0, 50_000_000)) / Decimal(10**9) if tier == 0 else Decimal(0)
        if status != "ok":
            cost = Decimal(0)
        rows.append(InferenceEvent(
            created_at=start + timedelta(seconds=rng.random() * span),
            request_id=f"seed-{seed}-{i}-{uuid.uuid4().hex[:8]}", organization_id=org_id,
            api_key_id=rng.choice(key_ids), endpoint="chat", model=rng.choice(MODELS),
            provider="openai", task_type=rng.choice(TASKS), cache_tier=tier, status=status,
            http_status=200 if status == "ok" else 502,
            input_tokens=rng.randint(1, 4000), output_tokens=rng.randint(0, 1000),
            cached_input_tokens=rng.randint(0, 100), cost_usd=cost,
            baseline_cost_usd=(Decimal(rng.randint(0, 90_000_000)) / Decimal(10**9))
            if status == "ok" else Decimal(0),
            latency_ms=rng.lognormvariate(6.0, 0.9),
        ))
    return InferenceEvent.objects.bulk_create(rows, batch_size=2000)


def ledger(org_id: uuid.UUID, since: datetime | None = None) -> QuerySet[InferenceEvent]:
    qs = InferenceEvent.objects.filter(organization_id=org_id)
    return qs.filter(created_at__gte=since) if since else qs


def ledger_sums(qs: QuerySet[InferenceEvent]) -> dict[str, Any]:
    agg = qs.aggregate(
        requests=Count("id"), cost=Sum("cost_usd"),
        hits=Count("id", filter=Q(cache_tier__gt=0, status="ok")),
        ok=Count("id", filter=Q(status="ok")),
        saved=Sum("baseline_cost_usd", filter=Q(cache_tier__gt=0, status="ok")),
        baseline_ok=Sum("baseline_cost_usd", filter=Q(status="ok")),
        cost_ok=Sum("cost_usd", filter=Q(status="ok")),
        input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
    )
    return {k: (v if v is not None else (Decimal(0) if k in ("cost", "saved", "baseline_ok",
                                                                "cost_ok") else 0))
            for k, v in agg.items()}


def group_sums(qs: QuerySet[InferenceEvent], field: str) -> dict[Any, tuple[int, Decimal]]:
    return {r[field]: (r["n"], r["c"]) for r in qs.values(field).annotate(n=Count("id"),
                                                                         c=Sum("cost_usd"))}


def ids(items: Iterable[Any]) -> list[Any]:
    return [i.pk for i in items]


@pytest.fixture
def seeded(tenant, outsider):  # type: ignore[no-untyped-def]
    """Ten days of traffic for the tenant (three keys + keyless), a little for the outsider."""
    now = timezone.now()
    keys = [tenant.admin.key.pk, tenant.infer.key.pk, tenant.analytics.key.pk, None]
    seed_events(org_id=tenant.org.id, key_ids=keys, start=now - timedelta(days=10),
                end=now - timedelta(minutes=1), count=3000, seed=1)
    seed_events(org_id=outsider.org.id, key_ids=[outsider.infer.key.pk],
                start=now - timedelta(days=3), end=now, count=200, seed=2)
    return tenant


# The live gateway (uvicorn + fake upstream) from the inference tests.
from tests.fakeup import fake_upstream  # noqa: E402, F401
from tests.inference.conftest import (  # noqa: E402, F401
    asahi_url,
    gateway,
    live_tenant,
    upstream_env,
)
