"""Status values: the batch's are OpenAI's own, so the SDK's Batch model parses them unchanged."""

from django.db import models


class BatchStatus(models.TextChoices):
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ACTIVE = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING,
          BatchStatus.CANCELLING)


class ItemState(models.TextChoices):
    PENDING = "pending", "Waiting for the pipeline (cache, routing)"
    QUEUED = "queued", "Routed; waiting for a provider batch or a worker"
    SUBMITTED = "submitted", "In a provider batch"
    DONE = "done", "Answered and charged"
    FAILED = "failed", "Reported in the error file"


OPEN_ITEM_STATES = (ItemState.PENDING, ItemState.QUEUED, ItemState.SUBMITTED)


class JobState(models.TextChoices):
    CREATED = "created", "Not yet at the provider"
    SUBMITTED = "submitted", "At the provider"
    DONE = "done", "Results written back"
    FAILED = "failed", "The provider refused or lost it; its items failed"


class FilePurpose(models.TextChoices):
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"


class BatchKind(models.TextChoices):
    OPENAI = "openai", "/v1/batches"
    DEFERRED = "deferred", "/infer with deferrable: true"
