"""Analytics HTTP API: thin DRF views over `analytics.selectors` and `analytics.insights`.

Every view resolves the caller's organization with `resolve_org` (a key sees only its own; staff
name one with `org_id`), validates its parameters (400 listing valid values) and serializes.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import anomaly_findings, insights_bridge, selectors
from analytics.rollup import EPOCH
from asahi_project.errors import InvalidRequest
from asahi_project.health import STARTED
from governance.api import resolve_org
from governance.auth import AnalyticsScope, bearer_token, principal_of
from governance.models import Organization


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, dates and Decimals to JSON types (money as float for the contract)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _org(request: Request) -> Organization:
    return resolve_org(principal_of(request), request.query_params.get("org_id"))


def _period(request: Request, default: str = "24h") -> tuple[str, datetime]:
    period = request.query_params.get("period") or default
    return period, selectors.period_since(period)


def _uptime() -> float:
    return round(time.time() - STARTED, 3)


ORG_PARAM = OpenApiParameter("org_id", str, required=False, description="staff only")
PERIOD_PARAM = OpenApiParameter("period", str, enum=list(selectors.PERIODS), required=False)


def summary_payload(*, org: Organization, period: str, since: datetime) -> dict[str, Any]:
    t = selectors.totals(org_ids=[org.id], since=since)
    baseline = t.baseline_cost_usd
    return {
        "org_id": str(org.id), "period": period, "since": since.isoformat(),
        "total_cost": float(t.cost_usd), "total_requests": t.requests,
        "served_requests": t.ok_requests, "errors": t.errors,
        "cache_hit_rate": round(t.cache_hit_rate, 6), "cache_hits": t.cache_hits,
        "cache_cost_saved": float(t.cache_cost_saved), "uptime_seconds": _uptime(),
        "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
        "savings": {
            "baseline_cost": float(baseline), "actual_cost": float(t.cost_usd),
            "saved_usd": float(t.savings_usd),
            "saved_percent": round(float(t.savings_usd / baseline * 100), 4) if baseline else 0.0,
        },
    }


class MetricsView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM], responses={200: dict})
    def get(self, request: Request) -> Response:
        org = _org(request)
        t = selectors.totals(org_ids=[org.id], since=EPOCH)
        return Response({
            "org_id": str(org.id), "total_cost": float(t.cost_usd),
            "cache_hit_rate": round(t.cache_hit_rate, 6),
            "cache_size": selectors.semantic_cache_size(org_id=org.id),
            "cache_cost_saved": float(t.cache_cost_saved), "requests": t.requests,
            "uptime_seconds": _uptime(), "tier1_hits": t.hits_by_tier.get(1, 0),
            "tier2_hits": t.hits_by_tier.get(2, 0), "tier3_hits": t.hits_by_tier.get(3, 0),
        })


class CostSummaryView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM, PERIOD_PARAM], responses={200: dict})
    def get(self, request: Request) -> Response:
        period, since = _period(request)
        return Response(summary_payload(org=_org(request), period=period, since=since))


class RecentInferencesView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM, OpenApiParameter("limit", int, required=False)],
                   responses={200: dict})
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "50")
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            raise InvalidRequest("limit must be an integer from 1 to 500", param="limit")
        org = _org(request)
        items = selectors.recent_inferences(org_id=org.id, limit=limit)
        return Response({"org_id": str(org.id), "count": len(items), "inferences": items})


class CostBreakdownView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[
        ORG_PARAM, PERIOD_PARAM,
        OpenApiParameter("by", str, enum=list(selectors.BREAKDOWNS), required=False),
        OpenApiParameter("interval", str, enum=list(selectors.INTERVALS), required=False)],
        responses={200: dict})
    def get(self, request: Request) -> Response:
        q = request.query_params
        by = selectors.choice(q.get("by"), allowed=selectors.BREAKDOWNS, default="model",
                              param="by")
        interval = selectors.choice(q.get("interval"), allowed=selectors.INTERVALS,
                                    default="day", param="interval")
        period, since = _period(request, "30d")
        org = _org(request)
        rows = selectors.breakdown(org_ids=[org.id], by=by, since=since, interval=interval)
        total = sum((r.cost_usd for r in rows), Decimal(0))
        return Response({
            "org_id": str(org.id), "by": by, "period": period, "since": since.isoformat(),
            "total_cost": float(total), "total_requests": sum(r.requests for r in rows),
            "items": [{
                "key": r.key, "requests": r.requests, "cost": float(r.cost_usd),
                "baseline_cost": float(r.baseline_cost_usd),
                "savings": float(r.baseline_cost_usd - r.cost_usd),
                "share": float(r.cost_usd / total) if total else 0.0,
                "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                "cache_hits": r.cache_hits,
            } for r in rows],
        })


class TrendsView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[
        ORG_PARAM, PERIOD_PARAM,
        OpenApiParameter("metric", str, enum=list(selectors.TREND_METRICS), required=False),
        OpenApiParameter("interval", str, enum=list(selectors.INTERVALS), required=False)],
        responses={200: dict})
    def get(self, request: Request) -> Response:
        q = request.query_params
        metric = selectors.choice(q.get("metric"), allowed=selectors.TREND_METRICS,
                                  default="cost", param="metric")
        period, since = _period(request, "7d")
        interval = selectors.choice(q.get("interval"), allowed=selectors.INTERVALS,
                                    default="hour" if period in ("24h", "day") else "day",
                                    param="interval")
        org = _org(request)
        points = selectors.trend(org_ids=[org.id], metric=metric, since=since, interval=interval)
        return Response({
            "org_id": str(org.id), "metric": metric, "period": period, "interval": interval,
            "since": since.isoformat(),
            "points": [{"timestamp": t.isoformat(), "value": v} for t, v in points],
        })


class CachePerformanceView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM, PERIOD_PARAM], responses={200: dict})
    def get(self, request: Request) -> Response:
        period, since = _period(request, "7d")
        org = _org(request)
        t = selectors.totals(org_ids=[org.id], since=since)
        tiers = [{
            "tier": tier, "name": selectors.TIER_NAMES[tier],
            "hits": t.hits_by_tier.get(tier, 0),
            "hit_rate": t.hits_by_tier.get(tier, 0) / t.ok_requests if t.ok_requests else 0.0,
            "cost_saved": float(t.saved_by_tier.get(tier, Decimal(0))),
        } for tier in (1, 2, 3)]
        return Response({
            "org_id": str(org.id), "period": period, "since": since.isoformat(),
            "requests": t.ok_requests, "hits": t.cache_hits,
            "misses": t.ok_requests - t.cache_hits, "hit_rate": t.cache_hit_rate,
            "cost_saved": float(t.cache_cost_saved), "tiers": tiers,
            "cache_size": selectors.semantic_cache_size(org_id=org.id),
        })


class LatencyPercentilesView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM, PERIOD_PARAM], responses={200: dict})
    def get(self, request: Request) -> Response:
        period, since = _period(request)
        org = _org(request)
        overall, per_model = selectors.latency_percentiles(org_ids=[org.id], since=since)
        return Response({
            "org_id": str(org.id), "period": period, "since": since.isoformat(),
            "method": "log-spaced histogram (x1.2 buckets), geometric bucket midpoint",
            "overall": jsonable(overall), "by_model": jsonable(per_model),
        })


class ForecastView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM], responses={200: dict})
    def get(self, request: Request) -> Response:
        org = _org(request)
        return Response({"org_id": str(org.id),
                         **jsonable(insights_bridge.month_forecast(org=org))})


class AnomaliesView(APIView):
    """Anomaly episodes ending in the last `hours`, from the periodic scan (`source: scan`, as of
    `scanned_at`); an organization never scanned gets its organization-level series detected on
    demand (`source: on_demand`)."""

    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM, OpenApiParameter("hours", int, required=False)],
                   responses={200: dict})
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("hours", "24")
        if not raw.isdigit() or not 1 <= int(raw) <= 24 * 30:
            raise InvalidRequest("hours must be an integer from 1 to 720", param="hours")
        hours = int(raw)
        org = _org(request)
        report = anomaly_findings.recent_anomalies(org=org, hours=hours)
        return Response({"org_id": str(org.id), "hours": hours, "count": len(report.anomalies),
                         "source": report.source,
                         "scanned_at": report.scanned_at.isoformat() if report.scanned_at else None,
                         "keys_skipped": report.keys_skipped,
                         "anomalies": jsonable(report.anomalies)})


class RecommendationsView(APIView):
    permission_classes = [AnalyticsScope]

    @extend_schema(parameters=[ORG_PARAM], responses={200: dict})
    def get(self, request: Request) -> Response:
        org = _org(request)
        recs = insights_bridge.org_recommendations(org=org)
        return Response({"org_id": str(org.id), "count": len(recs),
                         "recommendations": jsonable(recs)})


class PrometheusView(APIView):
    """Text exposition: in-process metrics plus exact ledger-derived totals per organization.

    Auth: `Bearer <ASAHI_METRICS_SCRAPE_TOKEN>` (all organizations) or an analytics-scoped key
    (its own organization only).
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request: Request) -> HttpResponse:
        from analytics import prometheus

        org_ids = None
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", "")) or ""
        scrape = settings.ASAHI_METRICS_SCRAPE_TOKEN
        if not (scrape and hmac.compare_digest(token.encode(), scrape.encode())):
            from governance.auth import ApiKeyAuthentication

            auth = ApiKeyAuthentication().authenticate(request)
            if auth is None:
                from asahi_project.errors import AuthenticationFailed

                raise AuthenticationFailed("send 'Authorization: Bearer <scrape token or key>'")
            request.user = auth[0]  # type: ignore[assignment]
            AnalyticsScope().has_permission(request, self)
            org_ids = [resolve_org(auth[0], request.query_params.get("org_id")).id]
        body, content_type = prometheus.render(org_ids=org_ids)
        return HttpResponse(body, content_type=content_type)

