"""Celery tasks of the inference app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import shared_task
from django.utils import timezone


@dataclass(frozen=True)
class RetentionResult:
    payloads_deleted: int
    semantic_entries_deleted: int


def apply_retention(*, now: datetime | None = None) -> RetentionResult:
    """Delete prompt/response text and semantic-cache entries older than each organization's
    `policy.retention_days` (0 = keep none). The numeric ledger is kept."""
    from caching.models import SemanticEntry
    from governance.models import Organization, Policy
    from inference.models import InferencePayload

    now = now or timezone.now()
    days_by_org = dict(Policy.objects.values_list("organization_id", "retention_days"))
    default_days = Policy._meta.get_field("retention_days").default
    payloads = entries = 0
    for org_id in Organization.objects.values_list("id", flat=True):
        cutoff = now - timedelta(days=days_by_org.get(org_id, default_days))
        payloads += InferencePayload.objects.filter(organization_id=org_id,
                                                    created_at__lt=cutoff).delete()[0]
        entries += SemanticEntry.objects.filter(organization_id=org_id,
                                                created_at__lt=cutoff).delete()[0]
    return RetentionResult(payloads_deleted=payloads, semantic_entries_deleted=entries)


@shared_task(name="inference.retention")
def retention() -> dict[str, int]:
    result = apply_retention()
    return {"payloads": result.payloads_deleted, "semantic_entries": result.semantic_entries_deleted}
