"""Batches, their items and files, and the provider batch jobs that carry the items upstream.

The item table is the state machine (see docs/batching.md): each item moves pending → queued →
(submitted →) done | failed, each move in a transaction that holds the item's row lock, so a
worker killed at any point leaves every item in exactly one state and charged at most once.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.db import models

from batching.choices import BatchKind, BatchStatus, FilePurpose, ItemState, JobState
from governance.models import ApiKey, Organization, money_field


def _file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def _batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


class BatchFile(models.Model):
    """An uploaded input file or a generated output/error file; the bytes live in the storage
    backend (``STORAGES['default']``) under ``storage_name``."""

    id = models.CharField(primary_key=True, max_length=40, default=_file_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=16, choices=FilePurpose.choices)
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    storage_name = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"], name="batchfile_org_time")]

    def __str__(self) -> str:
        return self.id


class Batch(models.Model):
    """One OpenAI-style batch (or one deferred /infer request, a batch of one)."""

    id = models.CharField(primary_key=True, max_length=40, default=_batch_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=16, choices=BatchKind.choices, default=BatchKind.OPENAI)
    endpoint = models.CharField(max_length=64, default="/v1/chat/completions")
    completion_window = models.CharField(max_length=8, default="24h")
    status = models.CharField(max_length=16, choices=BatchStatus.choices,
                              default=BatchStatus.VALIDATING)
    input_file = models.ForeignKey(BatchFile, null=True, on_delete=models.PROTECT,
                                   related_name="+")
    output_file = models.ForeignKey(BatchFile, null=True, on_delete=models.SET_NULL,
                                    related_name="+")
    error_file = models.ForeignKey(BatchFile, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    metadata = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(null=True, blank=True)
    # The budget reservation of the whole batch's worst case: each finished item settles its own
    # share (idempotent per item); finalization releases what is left.
    reservation_id = models.CharField(max_length=200, blank=True)
    reserved_usd = money_field(default=Decimal(0))
    # Deferred /infer: where to POST the result, and the HMAC key (encrypted) that signs it.
    webhook_url = models.URLField(max_length=2000, blank=True)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="batch_org_time"),
            models.Index(fields=["status"], name="batch_status",
                         condition=models.Q(status__in=["validating", "in_progress",
                                                        "finalizing", "cancelling"])),
        ]

    def __str__(self) -> str:
        return self.id


class ProviderJob(models.Model):
    """The items of one batch that go to one provider+model batch API as one upstream batch."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="jobs")
    provider_kind = models.CharField(max_length=32)
    model = models.CharField(max_length=120)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.CREATED)
    upstream_id = models.CharField(max_length=200, blank=True)
    # Submissions started (committed before each): past the first, look for an earlier one
    # that reached the provider before its worker died.
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the first submission started (committed before it): where to look for it at the
    # provider if its worker died before storing the id.
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state"], name="providerjob_open",
                                condition=models.Q(state__in=["created", "submitted"]))]

    def __str__(self) -> str:
        return f"{self.provider_kind}:{self.model}:{self.upstream_id or self.pk}"


class BatchItem(models.Model):
    """One request of a batch, keyed by (batch, custom_id): every step on it is idempotent."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    custom_id = models.CharField(max_length=512)
    line = models.PositiveIntegerField()
    # Rejected at validation (malformed line, unknown model, duplicate custom_id...): reported in
    # the error file, and outside the uniqueness of custom_id (a bad line may lack one).
    rejected = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=ItemState.choices, default=ItemState.PENDING)
    body = models.JSONField(null=True)
    # Routing's decision, kept so the later steps (submit, write back, fallback) need no re-plan.
    model = models.CharField(max_length=120, blank=True)
    provider_kind = models.CharField(max_length=32, blank=True)
    plan = models.JSONField(null=True, blank=True)
    job = models.ForeignKey(ProviderJob, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="items")
    response = models.JSONField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    cache_tier = models.PositiveSmallIntegerField(default=0)
    cost_usd = money_field(default=Decimal(0))
    # This item's worst case within the batch's reservation; once the item has finished, its
    # share of the hold is released and its cost charged (budget_settled), item by item.
    reserved_usd = money_field(default=Decimal(0))
    budget_settled = models.BooleanField(default=False)
    sync_cost_usd = money_field(default=Decimal(0))
    techniques = models.JSONField(default=list, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "custom_id"], name="batchitem_custom_id",
                                    condition=models.Q(rejected=False)),
        ]
        indexes = [models.Index(fields=["batch", "state"], name="batchitem_batch_state")]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.custom_id}"
