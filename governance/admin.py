"""Operator console for governance: organizations with keys and policy inline, key actions, audit log."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from asahi_project.client_ip import client_ip
from asahi_project.textrules import validate_name
from governance import services
from governance.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from governance.models import ApiKey, AuditEvent, Membership, Organization, Policy


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _show_once(request: HttpRequest, issued: services.IssuedKey) -> None:
    messages.warning(
        request,
        format_html(
            "New API key for {}: <code>{}</code> — copy it now; it is shown only this once.",
            issued.key.organization, issued.raw,
        ),
    )


class PolicyInline(admin.StackedInline):
    model = Policy
    can_delete = False
    extra = 0


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "name", "scopes", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ("prefix", "name", "scopes", "expires_at", "revoked_at", "last_used_at")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are issued by the "Issue API key" action, which shows the secret once


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class OrganizationForm(forms.ModelForm):
    name = forms.CharField(max_length=120, validators=[validate_name])

    class Meta:
        model = Organization
        fields = ["name", "is_active"]


class ApiKeyForm(forms.ModelForm):
    name = forms.CharField(max_length=120, required=False, validators=[validate_name])

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expires_at", "frozen_at", "frozen_reason", "daily_budget_usd",
                  "monthly_budget_usd", "rpm_limit", "tpm_limit", "allowed_models"]


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    form = OrganizationForm
    list_display = ["name", "id", "is_active", "created_at"]
    search_fields = ["name", "id"]
    list_filter = ["is_active"]
    inlines = [PolicyInline, ApiKeyInline, MembershipInline]
    actions = ["issue_key"]

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        Policy.objects.get_or_create(organization=obj)

    @admin.action(description="Issue API key (scope: all)")
    def issue_key(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset:
            issued = services.api_key_issue(organization=org, actor=_actor(request),
                                            name="issued in admin", scopes=["all"],
                                            created_by=request.user,
                                            ip=client_ip(request))
            _show_once(request, issued)


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedModelAdmin):
    form = ApiKeyForm
    list_display = ["prefix", "organization", "name", "scopes", "created_at", "expires_at",
                    "revoked_at", "last_used_at"]
    list_filter: ClassVar[Any] = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["prefix", "name", "organization__name"]
    readonly_fields = ["prefix", "organization", "created_at", "created_by", "revoked_at",
                       "last_used_at", "key_hash_note"]
    exclude = ["key_hash"]
    actions = ["revoke_keys", "rotate_keys"]

    @admin.display(description="Secret")
    def key_hash_note(self, obj: ApiKey) -> str:
        return "Stored as a SHA-256 hash; the raw key was shown once when issued."

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issue from the Organization list ("Issue API key") so the secret is shown once

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.api_key_revoke(prefix=key.prefix, actor=_actor(request),
                                    ip=client_ip(request))
        messages.success(request, f"Revoked {queryset.count()} key(s).")

    @admin.action(description="Rotate selected keys (revoke and issue a replacement)")
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in list(queryset):
            _show_once(request, services.api_key_rotate(prefix=key.prefix, actor=_actor(request),
                                                        ip=client_ip(request)))


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    """Who may use the web console, and with which role (changes are audited like the rest)."""

    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["organization", "user"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Policy)
class PolicyAdmin(AuditedModelAdmin):
    list_display = ["organization", "daily_budget_usd", "monthly_budget_usd", "rpm_limit",
                    "cache_enabled", "redis_failure_mode", "updated_at"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "actor", "organization", "target_type", "target_id",
                    "ip", "request_id"]
    list_filter: ClassVar[Any] = ["action", "target_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor", "target_id", "request_id", "action"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
