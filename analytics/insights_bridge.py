"""Turn rollup reads into the plain inputs of `analytics.insights` (forecast, anomalies, advice)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count
from django.utils import timezone

from analytics import selectors
from analytics.insights import (
    Anomaly,
    BudgetStatus,
    CacheTierStats,
    CatalogueModel,
    Granularity,
    KeyInfo,
    ModelUsage,
    MonthEndForecast,
    Recommendation,
    RecommendationInputs,
    UsageBucket,
    build_recommendations,
    detect_usage_anomalies,
    forecast_month_end,
)
from analytics.rollup import floor_day, floor_hour
from governance.models import ApiKey, Organization, Policy

ANOMALY_HISTORY = timedelta(days=14)
FORECAST_HISTORY_DAYS = 90
RECOMMENDATION_DAYS = 30


def _policy(org: Organization) -> Policy | None:
    return Policy.objects.filter(organization=org).first()


def month_forecast(*, org: Organization, now: datetime | None = None) -> MonthEndForecast:
    now = (now or timezone.now()).astimezone(UTC)
    since = floor_day(now) - timedelta(days=FORECAST_HISTORY_DAYS)
    spend = [(d.date(), c) for d, c in selectors.daily_spend(org_ids=[org.id], since=since)]
    today = floor_day(now)
    policy = _policy(org)
    return forecast_month_end(
        daily_spend=spend, as_of=today.date(),
        budget_usd=policy.monthly_budget_usd if policy else None,
        as_of_fraction=(now - today).total_seconds() / 86_400,
    )


def usage_buckets(rows: list[selectors.HourBucket]) -> list[UsageBucket]:
    """Hour rows (of any keys) summed per hour into the detector's input."""
    merged: dict[datetime, list[float]] = {}
    for r in rows:
        acc = merged.setdefault(r.start, [0, 0, 0.0, 0.0])
        acc[0] += r.requests
        acc[1] += r.errors
        acc[2] += r.cost_usd
        acc[3] += r.latency_sum_ms
    return [UsageBucket(start=t, requests=int(a[0]), errors=int(a[1]), cost_usd=a[2],
                        latency_ms=a[3] / a[0] if a[0] else None)
            for t, a in sorted(merged.items())]


def detect_org_and_keys(*, org: Organization, rows: list[selectors.HourBucket], keys: list[int],
                        until: datetime, since: datetime) -> list[tuple[Anomaly, int | None]]:
    """Hourly anomalies of the organization's series (all of `rows`) and of each key in `keys`,
    ending at or after `since`, each with its key id (None for the organization). `until` is the
    current hour: still filling, so `partial_from` keeps it from reading as a drop."""

    def detect(scope: str, scope_id: str, scope_rows: list[selectors.HourBucket]) -> list[Anomaly]:
        return detect_usage_anomalies(buckets=usage_buckets(scope_rows), scope=scope,
                                      scope_id=scope_id, granularity=Granularity.HOUR,
                                      until=until, since=since, partial_from=until)

    found: list[tuple[Anomaly, int | None]] = [
        (a, None) for a in detect("organization", str(org.id), rows)]
    by_key: dict[int, list[selectors.HourBucket]] = {k: [] for k in keys}
    for r in rows:
        if r.api_key_id in by_key:
            by_key[r.api_key_id].append(r)
    prefixes = dict(ApiKey.objects.filter(pk__in=keys).values_list("pk", "prefix"))
    for key_id in keys:
        found += [(a, key_id) for a in detect("key", prefixes.get(key_id, str(key_id)),
                                              by_key[key_id])]
    return found


def org_anomalies(*, org: Organization, report_hours: int = 24, now: datetime | None = None,
                  include_keys: bool = True) -> list[Anomaly]:
    """Hourly anomalies of the organization and each of its keys ending in the last hours.

    Runs the detector on demand (one pass per key): the endpoint reads the findings of the
    periodic scan instead (`analytics.anomaly_findings`) and uses this, organization-level only,
    for an organization that was never scanned.
    """
    now = now or timezone.now()
    rows = selectors.hourly_usage(org_ids=[org.id], since=floor_hour(now - ANOMALY_HISTORY),
                                  by_key=include_keys)
    keys = list(dict.fromkeys(r.api_key_id for r in rows if r.api_key_id)) if include_keys else []
    found = detect_org_and_keys(org=org, rows=rows, keys=keys, until=floor_hour(now),
                                since=now - timedelta(hours=report_hours))
    return [a for a, _ in found]


def org_recommendations(*, org: Organization, now: datetime | None = None) -> list[Recommendation]:
    from inference.models import Feedback
    from inference.selectors import get_catalogue

    now = now or timezone.now()
    since = floor_hour(now - timedelta(days=RECOMMENDATION_DAYS))
    quality = {
        (f["task_type"], f["model"]): (f["avg"], f["n"])
        for f in Feedback.objects.filter(organization=org, created_at__gte=since)
        .values("task_type", "model").annotate(avg=Avg("rating"), n=Count("id"))
    }
    usage = []
    for task, model, req, cost, inp, outp in selectors.model_task_usage(org_ids=[org.id],
                                                                        since=since):
        q, n = quality.get((task, model), (None, 0))
        usage.append(ModelUsage(task_type=task, model=model, requests=req, cost_usd=float(cost),
                                input_tokens=inp, output_tokens=outp,
                                measured_quality=float(q) if q is not None else None,
                                feedback_count=n))
    catalogue = [CatalogueModel(name=m.name, input_price_per_m=float(m.input_price_per_m),
                                output_price_per_m=float(m.output_price_per_m),
                                quality=dict(m.quality))
                 for m in get_catalogue().chat_models()]
    t = selectors.totals(org_ids=[org.id], since=since)
    tiers = [CacheTierStats(tier=selectors.TIER_NAMES[k], lookups=t.ok_requests,
                            hits=t.hits_by_tier.get(k, 0)) for k in (1, 2, 3)]
    spend = selectors.key_spend(org_ids=[org.id], since=since)
    keys = [KeyInfo(key_prefix=k.prefix, name=k.name,
                    period_spend_usd=float(spend.get(k.pk, Decimal(0))),
                    has_budget=k.daily_budget_usd is not None or k.monthly_budget_usd is not None)
            for k in ApiKey.objects.filter(organization=org, revoked_at__isnull=True)]
    budgets = []
    policy = _policy(org)
    if policy is not None:
        for period, limit, start in (
            ("daily", policy.daily_budget_usd, selectors.period_since("day", now=now)),
            ("monthly", policy.monthly_budget_usd, selectors.period_since("month", now=now)),
        ):
            if limit:
                spent = selectors.totals(org_ids=[org.id], since=start).cost_usd
                budgets.append(BudgetStatus(scope="organization", scope_id=org.name,
                                            period=period, limit_usd=float(limit),
                                            spent_usd=float(spent)))
    inputs = RecommendationInputs(period_days=float(RECOMMENDATION_DAYS), usage=usage,
                                  catalogue=catalogue, cache_tiers=tiers, keys=keys,
                                  budgets=budgets)
    return build_recommendations(inputs=inputs)
