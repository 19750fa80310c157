"""Operator console for routing: enrichment contexts (edited, audited) and quality estimates (read)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin

from governance.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from routing.models import EnrichmentContext, QualityEstimate
from routing.selectors import invalidate_org_contexts


@admin.register(EnrichmentContext)
class EnrichmentContextAdmin(AuditedModelAdmin):
    list_display = ("organization", "user_id", "enabled", "updated_at")
    list_filter: ClassVar[Any] = ("enabled",)
    search_fields: ClassVar[Any] = ("organization__name", "user_id", "instructions")
    readonly_fields: ClassVar[Any] = ("updated_at",)

    def save_model(self, request: Any, obj: EnrichmentContext, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # This process sees the edit at once; other processes within the selector's TTL.
        invalidate_org_contexts(obj.organization_id)

    def delete_model(self, request: Any, obj: EnrichmentContext) -> None:
        org_id = obj.organization_id
        super().delete_model(request, obj)
        invalidate_org_contexts(org_id)


@admin.register(QualityEstimate)
class QualityEstimateAdmin(ReadOnlyAdmin):
    """Written only by the feedback fold; shown so operators see what the router believes."""

    list_display = ("model", "task_type", "mean", "count", "updated_at")
    list_filter: ClassVar[Any] = ("task_type",)
    search_fields: ClassVar[Any] = ("model",)
