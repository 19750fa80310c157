"""Governance data: organizations, members, API keys, policies and the append-only audit log."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from governance.choices import FailureMode, Role, Scope


def money_field(**kwargs: Any) -> models.DecimalField:
    """USD amounts to the nano-dollar: sums of many tiny per-request costs stay exact."""
    return models.DecimalField(max_digits=20, decimal_places=9, **kwargs)


class Organization(models.Model):
    """A tenant. Every key, policy, ledger row and cache entry belongs to exactly one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A console user's role in their organization. A user belongs to exactly one organization, so
    every page resolves its tenant from the session alone (no organization picker to get wrong)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="membership")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "role"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ApiKey(models.Model):
    """An API key. Only a SHA-256 hash of the secret is stored; the raw key is shown once at issue."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(max_length=32, unique=True, help_text="Public part, safe to display.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_reason = models.CharField(max_length=255, blank=True)
    daily_budget_usd = money_field(null=True, blank=True,
                                           validators=[MinValueValidator(Decimal(0))])
    monthly_budget_usd = money_field(null=True, blank=True,
                                             validators=[MinValueValidator(Decimal(0))])
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    allowed_models = ArrayField(models.CharField(max_length=120), default=list, blank=True,
                                help_text="Empty means the organization's policy decides.")

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.organization})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Policy(models.Model):
    """Per-organization governance and cache policy. Enforced before any upstream spend."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="policy")
    daily_budget_usd = money_field(null=True, blank=True,
                                           validators=[MinValueValidator(Decimal(0))])
    monthly_budget_usd = money_field(null=True, blank=True,
                                             validators=[MinValueValidator(Decimal(0))])
    max_cost_per_request_usd = money_field(null=True, blank=True,
                                                   validators=[MinValueValidator(Decimal(0))])
    allowed_models = ArrayField(models.CharField(max_length=120), default=list, blank=True,
                                help_text="Empty means every enabled model.")
    allowed_providers = ArrayField(models.CharField(max_length=120), default=list, blank=True,
                                   help_text="Empty means every enabled provider.")
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    cache_enabled = models.BooleanField(default=True)
    cache_ttl_seconds = models.PositiveIntegerField(default=86_400)
    cache_max_temperature = models.FloatField(
        default=0.7, help_text="Requests with a higher temperature bypass the cache."
    )
    semantic_cache_enabled = models.BooleanField(default=True)
    semantic_threshold = models.FloatField(
        null=True, blank=True, help_text="Overrides the per-task high threshold (0-1)."
    )
    pii_redaction = models.BooleanField(default=False)
    retention_days = models.PositiveIntegerField(default=30)
    redis_failure_mode = models.CharField(max_length=8, choices=FailureMode.choices,
                                          default=FailureMode.CLOSED)
    reference_model = models.CharField(max_length=120, default="gpt-4o",
                                       help_text="Baseline for savings: what requests would cost on it.")
    alert_emails = ArrayField(models.EmailField(), default=list, blank=True)
    alert_webhook_url = models.URLField(blank=True)
    freeze_keys_on_anomaly = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(cache_max_temperature__gte=0) & Q(cache_max_temperature__lte=2),
                name="policy_cache_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(semantic_threshold__isnull=True)
                | (Q(semantic_threshold__gte=0) & Q(semantic_threshold__lte=1)),
                name="policy_semantic_threshold_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy for {self.organization}"


class AuditEvent(models.Model):
    """Append-only audit trail (a database trigger refuses UPDATE and DELETE)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")
    actor = models.CharField(max_length=200, help_text="user:<name>, key:<prefix>, system or anonymous")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}"
