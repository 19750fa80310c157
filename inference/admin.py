"""Operator console for the model catalogue, providers (keys encrypted, write-only), the ledger and
the rows the ledger writer set aside."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from governance.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from inference.models import (
    Feedback,
    InferenceEvent,
    LedgerDeadLetter,
    ModelEndpoint,
    Provider,
)


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only; stored encrypted. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False)

    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "enabled", "timeout_seconds"]

    def save(self, commit: bool = True) -> Any:
        obj: Provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            obj.set_api_key("")
        elif self.cleaned_data.get("api_key"):
            obj.set_api_key(self.cleaned_data["api_key"])
        if commit:
            obj.save()
        return obj


@admin.register(Provider)
class ProviderAdmin(AuditedModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "base_url", "enabled", "has_key"]
    list_filter = ["kind", "enabled"]

    @admin.display(boolean=True, description="Key stored")
    def has_key(self, obj: Provider) -> bool:
        return bool(obj.api_key_encrypted)


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(AuditedModelAdmin):
    list_display = ["name", "provider", "kind", "input_price_per_m", "output_price_per_m",
                    "cached_input_price_per_m", "context_window", "typical_latency_ms", "enabled"]
    list_filter = ["provider", "kind", "enabled"]
    list_select_related = ["provider"]
    search_fields = ["name", "upstream_name"]
    list_editable = ["enabled"]


@admin.register(InferenceEvent)
class InferenceEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "request_id", "organization_id", "model", "cache_tier", "status",
                    "input_tokens", "output_tokens", "cost_usd", "baseline_cost_usd", "latency_ms"]
    list_filter: ClassVar[Any] = ["status", "cache_tier", "endpoint", "model",
                   ("created_at", admin.DateFieldListFilter)]
    search_fields = ["request_id", "model"]
    show_full_result_count = False  # COUNT(*) over tens of millions of rows is what takes databases down
    ordering = ["-created_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).only(*[f for f in self.list_display if isinstance(f, str)])


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "request_id", "model", "task_type", "rating",
                    "folded"]
    list_filter = ["rating", "folded", "model"]


@admin.register(LedgerDeadLetter)
class LedgerDeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "request_id", "organization_id", "error"]
    list_filter: ClassVar[Any] = ["kind", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["request_id", "error"]
    fields = ["created_at", "kind", "request_id", "organization_id", "error", "row"]
