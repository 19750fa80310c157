"""Analytics storage: usage rollups folded from the ledger, the fold watermark, sent alerts.

The ledger (`inference.InferenceEvent`) stays the source of truth; rollups are a cache of it that the
`analytics.rollup` task recomputes bucket by bucket, so they can always be rebuilt from scratch.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models

from governance.models import ApiKey, Organization, money_field


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class UsageRollup(models.Model):
    """Sums of ledger rows per (bucket, granularity, org, key, model, task type, tier, status).

    `api_key_id` 0 stands for "no key" so the unique constraint covers every row (NULLs never
    conflict). Latency percentiles come from a sparse log-spaced histogram: `latency_idx[i]` is a
    bucket index (see `analytics.rollup.LATENCY_GROWTH`), `latency_cnt[i]` its count.
    """

    bucket_start = models.DateTimeField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    organization = models.ForeignKey(Organization, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")
    api_key_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=120, blank=True)
    task_type = models.CharField(max_length=32, blank=True)
    cache_tier = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = money_field(default=Decimal(0))
    baseline_cost_usd = money_field(default=Decimal(0))
    latency_sum_ms = models.FloatField(default=0)
    latency_idx = ArrayField(models.SmallIntegerField(), default=list)
    latency_cnt = ArrayField(models.BigIntegerField(), default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "organization", "bucket_start", "api_key_id", "model",
                        "task_type", "cache_tier", "status"],
                name="usagerollup_dims_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:00} {self.model}"


class RollupState(models.Model):
    """Fold watermark (Zulip's FillState): hourly buckets before floor_hour(watermark) are rolled;
    readers take later rows straight from the ledger."""

    name = models.CharField(max_length=32, unique=True)
    watermark = models.DateTimeField()
    last_run_at = models.DateTimeField()
    last_duration_ms = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.watermark.isoformat()}"


class SentAlert(models.Model):
    """One budget alert threshold, sent at most once per (scope, period start)."""

    created_at = models.DateTimeField(auto_now_add=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")
    kind = models.CharField(max_length=32, help_text="budget_daily, budget_monthly, anomaly")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(help_text="percent of the budget, 0 for anomalies")
    spent_usd = money_field(default=Decimal(0))
    limit_usd = money_field(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "period_start", "threshold"],
                                    condition=models.Q(api_key__isnull=True),
                                    name="sentalert_org_once"),
            models.UniqueConstraint(fields=["organization", "api_key", "kind", "period_start",
                                            "threshold"],
                                    condition=models.Q(api_key__isnull=False),
                                    name="sentalert_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.threshold}% {self.period_start:%Y-%m-%d}"


class AnomalyFinding(models.Model):
    """One anomaly episode of an organization or of one of its keys, found by the scan that the
    `analytics.alerts` task runs (see `analytics.anomaly_findings`); `/analytics/anomalies` reads
    these rows instead of running the detector per key on every request.

    An episode is identified by where it starts: (scope, scope_id, metric, started_at). A scan
    replaces the findings that end inside its rescan window, so an episode still in progress is
    updated in place and one the newer data no longer supports disappears.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=16, help_text="organization | key")
    scope_id = models.CharField(max_length=64, help_text="organization id or key prefix")
    api_key_id = models.BigIntegerField(null=True, blank=True)
    metric = models.CharField(max_length=16)
    kind = models.CharField(max_length=16)
    direction = models.CharField(max_length=4)
    started_at = models.DateTimeField(help_text="first bucket of the episode")
    at = models.DateTimeField(help_text="spike: the peak bucket; level shift: the first bucket")
    end = models.DateTimeField(help_text="last bucket of the episode")
    points = models.PositiveIntegerField(default=1)
    value = models.FloatField()
    baseline = models.FloatField()
    deviation = models.FloatField()
    severity = models.CharField(max_length=16)
    message = models.TextField()
    detected_at = models.DateTimeField(help_text="first scan that found this episode")

    class Meta:
        indexes = [models.Index(fields=["organization", "end"], name="anomaly_org_end")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "scope", "scope_id", "metric", "started_at"],
                name="anomalyfinding_episode_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.scope_id} {self.metric} {self.kind} @ {self.at:%Y-%m-%d %H:00}"


class AnomalyScan(models.Model):
    """When an organization's anomalies were last scanned; no row means never (the endpoint then
    falls back to an on-demand, organization-level detection)."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE,
                                        related_name="+")
    scanned_at = models.DateTimeField()
    report_since = models.DateTimeField(help_text="findings ending from here on were recomputed")
    keys_scanned = models.PositiveIntegerField(default=0)
    keys_skipped = models.PositiveIntegerField(default=0)
    duration_ms = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"anomaly scan {self.organization_id} @ {self.scanned_at.isoformat()}"
