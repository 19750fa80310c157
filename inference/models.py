"""The model catalogue (providers and their models with prices) and the append-only request ledger."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from asahi_project.crypto import decrypt, encrypt
from governance.models import ApiKey, Organization, money_field
from inference.choices import CacheTier, DeadLetterKind, EventStatus, ModelKind, ProviderKind


class Provider(models.Model):
    """An upstream account. The API key is encrypted at rest; empty means the SDK's env variable."""

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    base_url = models.URLField(blank=True, help_text="Empty means the SDK's env variable or default.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.FloatField(default=60.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, raw: str) -> None:
        self.api_key_encrypted = encrypt(raw) if raw else ""

    def get_api_key(self) -> str:
        return decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""


class ModelEndpoint(models.Model):
    """A model offered through a provider, with its prices (USD per million tokens) and quality."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=120, unique=True, help_text="Public name clients use.")
    upstream_name = models.CharField(max_length=120, blank=True,
                                     help_text="Model id at the provider; empty means same as name.")
    kind = models.CharField(max_length=16, choices=ModelKind.choices, default=ModelKind.CHAT)
    input_price_per_m = models.DecimalField(max_digits=12, decimal_places=6)
    output_price_per_m = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cached_input_price_per_m = models.DecimalField(max_digits=12, decimal_places=6, null=True,
                                                   blank=True)
    cache_write_price_per_m = models.DecimalField(max_digits=12, decimal_places=6, null=True,
                                                  blank=True)
    context_window = models.PositiveIntegerField(default=128_000)
    max_output_tokens = models.PositiveIntegerField(default=16_384)
    quality = models.JSONField(default=dict, blank=True,
                               help_text='0-5 per task type, e.g. {"default": 4.2, "code": 4.5}')
    typical_latency_ms = models.PositiveIntegerField(default=800)
    supports_tools = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(input_price_per_m__gte=0),
                                   name="modelendpoint_input_price_nonneg"),
            models.CheckConstraint(condition=models.Q(output_price_per_m__gte=0),
                                   name="modelendpoint_output_price_nonneg"),
        ]

    def __str__(self) -> str:
        return self.name


class InferenceEvent(models.Model):
    """One row per request (hits, misses, denials, failures). Append-only; bulk-inserted off the hot path."""

    created_at = models.DateTimeField(db_index=False)
    request_id = models.CharField(max_length=128)
    # No single-column indexes: the composite (organization, created_at) and (organization, api_key,
    # created_at) indexes serve every query, and each extra index slows the bulk inserts.
    organization = models.ForeignKey(Organization, on_delete=models.DO_NOTHING, db_constraint=False,
                                     related_name="+", db_index=False)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+", db_index=False)
    endpoint = models.CharField(max_length=32, default="chat")
    model = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    task_type = models.CharField(max_length=32, blank=True)
    routing_mode = models.CharField(max_length=16, blank=True)
    routing_reason = models.TextField(blank=True)
    cache_tier = models.PositiveSmallIntegerField(choices=CacheTier.choices, default=CacheTier.MISS)
    cache_similarity = models.FloatField(null=True, blank=True)
    # Why the semantic tier served or refused a stored answer (X-Asahi-Cache-Reason), for audits
    # of false hits and misses. A database default too, so raw inserts (bench_analytics) need not
    # name it.
    cache_reason = models.CharField(max_length=300, blank=True, default="", db_default="")
    status = models.CharField(max_length=16, choices=EventStatus.choices, default=EventStatus.OK)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = money_field(default=Decimal(0))
    baseline_cost_usd = money_field(default=Decimal(0))
    latency_ms = models.FloatField(default=0)
    upstream_latency_ms = models.FloatField(null=True, blank=True)
    stream = models.BooleanField(default=False)
    user = models.CharField(max_length=200, blank=True)
    temperature = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "created_at"], name="ledger_org_time"),
            models.Index(fields=["organization", "api_key", "created_at"], name="ledger_org_key_time"),
            models.Index(fields=["request_id"], name="ledger_request_id"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} ${self.cost_usd}"


class InferencePayload(models.Model):
    """Stored prompt and answer of a request, kept only for the policy's retention days."""

    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=128, db_index=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    prompt = models.TextField()
    response = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.request_id


class LedgerDeadLetter(models.Model):
    """A buffered row the ledger writer could not insert, kept with the error instead of blocking
    every row after it. Written by inference.ledger; read in the admin; never retried by itself."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=DeadLetterKind.choices)
    request_id = models.CharField(max_length=128, blank=True, db_index=True)
    organization = models.ForeignKey(Organization, null=True, blank=True,
                                     on_delete=models.DO_NOTHING, db_constraint=False,
                                     related_name="+")
    error = models.TextField()
    # The row's fields made JSON-safe; prompt and answer are left out (only their lengths): they
    # are kept only for the policy's retention days, and a dead letter has no expiry.
    row = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.request_id}"


class Feedback(models.Model):
    """A user's rating of one answer; folded into per-model quality estimates by a Celery task."""

    created_at = models.DateTimeField(auto_now_add=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    request_id = models.CharField(max_length=128)
    model = models.CharField(max_length=120)
    task_type = models.CharField(max_length=32, blank=True)
    rating = models.PositiveSmallIntegerField(help_text="1-5")
    comment = models.TextField(blank=True)
    folded = models.BooleanField(default=False, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(rating__gte=1) & models.Q(rating__lte=5),
                                   name="feedback_rating_range"),
            models.UniqueConstraint(fields=["organization", "request_id"],
                                    name="feedback_one_per_request"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.rating}"
