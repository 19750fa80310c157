"""The operator console's view of batches: status and request counts, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from batching.choices import ItemState
from batching.models import Batch
from governance.admin_base import ReadOnlyAdmin


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "kind", "status", "total", "completed", "failed",
                    "reserved_usd", "created_at", "expires_at"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "organization__name"]
    list_select_related = ["organization"]
    ordering = ["-created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Batch]:
        return super().get_queryset(request).annotate(
            n_total=Count("items"),
            n_done=Count("items", filter=Q(items__state=ItemState.DONE)),
            n_failed=Count("items", filter=Q(items__state=ItemState.FAILED)))

    @admin.display(description="requests", ordering="n_total")
    def total(self, obj: Any) -> int:
        return int(obj.n_total)

    @admin.display(description="completed", ordering="n_done")
    def completed(self, obj: Any) -> int:
        return int(obj.n_done)

    @admin.display(description="failed", ordering="n_failed")
    def failed(self, obj: Any) -> int:
        return int(obj.n_failed)
