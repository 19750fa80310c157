"""Operator console for the cache: semantic entries and tier-3 digests, read-only, with invalidation."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from asahi_project.client_ip import client_ip
from caching import services
from caching.models import IntermediateResult, SemanticEntry


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deletion goes through the audited invalidate action


@admin.register(SemanticEntry)
class SemanticEntryAdmin(_ReadOnly):
    list_display = ["id", "organization", "model", "task_type", "hit_count", "created_at",
                    "expires_at", "short_prompt"]
    list_filter = ["organization", "model", "task_type"]
    search_fields = ["prompt"]
    exclude = ["embedding"]
    list_select_related = ["organization"]
    actions = ["invalidate"]

    @admin.display(description="prompt")
    def short_prompt(self, obj: SemanticEntry) -> str:
        return obj.prompt[:80]

    @admin.action(description="Invalidate the selected entries (audited)")
    def invalidate(self, request: HttpRequest, queryset: QuerySet[SemanticEntry]) -> None:
        done = 0
        for org_id, pk in queryset.values_list("organization_id", "pk"):
            done += services.cache_invalidate(organization_id=org_id, scope="entry",
                                              entry_id=pk, actor=_actor(request),
                                              ip=client_ip(request)).semantic_rows
        messages.success(request, f"Invalidated {done} semantic entries.")


@admin.register(IntermediateResult)
class IntermediateResultAdmin(_ReadOnly):
    list_display = ["document_hash", "organization", "step", "model", "hit_count", "tokens_saved",
                    "created_at"]
    list_filter = ["organization", "model", "step"]
    search_fields = ["document_hash"]
    list_select_related = ["organization"]
    actions = ["invalidate"]

    @admin.action(description="Invalidate the selected documents' digests (audited)")
    def invalidate(self, request: HttpRequest, queryset: QuerySet[IntermediateResult]) -> None:
        keys_n = rows_n = 0
        for org_id, doc_hash in queryset.values_list("organization_id",
                                                     "document_hash").distinct():
            result = services.cache_invalidate(organization_id=org_id, scope="entry",
                                               entry_id=doc_hash, actor=_actor(request),
                                               ip=client_ip(request))
            keys_n += result.intermediate_keys
            rows_n += result.intermediate_rows
        messages.success(request, f"Invalidated {rows_n} digest rows ({keys_n} Redis keys).")
