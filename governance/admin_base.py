"""Admin base class: every change made in the operator console also writes an AuditEvent."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from asahi_project.client_ip import client_ip
from governance.services import audit_log


def _org_of(obj: Any) -> Any:
    from governance.models import Organization

    if isinstance(obj, Organization):
        return obj.pk
    return getattr(obj, "organization_id", None)


class AuditedModelAdmin(admin.ModelAdmin):
    def _audit(self, request: HttpRequest, obj: Any, action: str, details: dict[str, Any]) -> None:
        audit_log(
            action=action,
            actor=f"user:{request.user.get_username()}",
            organization=_org_of(obj),
            target_type=obj._meta.model_name,
            target_id=str(obj.pk),
            ip=client_ip(request),
            details=details,
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "admin_add", {"object": str(obj)})
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "admin_change", {"object": str(obj), "changes": message})
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            self._audit(request, obj, "admin_delete", {"object": str(obj)})
        return super().log_deletions(request, queryset)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only tables: viewable and filterable, never editable."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
