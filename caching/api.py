"""Cache management HTTP API: `GET /cache/stats` and `POST /cache/invalidate` (org-scoped)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from asahi_project.client_ip import client_ip
from asahi_project.drf_input import PG_INT_MAX, StrictSerializer
from asahi_project.textrules import validate_name
from caching import selectors, services
from governance.api import resolve_org
from governance.auth import AdminScope, AnalyticsScope, principal_of


class CacheStatsView(APIView):
    """Entries per tier (exact keys by SCAN, live semantic rows, tier-3 digests) and hits."""

    permission_classes = [AnalyticsScope]

    @extend_schema(
        parameters=[OpenApiParameter("org_id", str, required=False),
                    OpenApiParameter("days", int, required=False,
                                     description="window for requests_by_tier (1-90, default 7)")],
        responses={200: inline_serializer("CacheStats", {
            "org_id": serializers.CharField(), "exact_entries": serializers.IntegerField(),
            "semantic_entries": serializers.IntegerField(),
            "semantic_expired": serializers.IntegerField(),
            "semantic_hits": serializers.IntegerField(),
            "intermediate_entries": serializers.IntegerField(),
            "intermediate_rows": serializers.IntegerField(),
            "intermediate_hits": serializers.IntegerField(),
            "intermediate_tokens_saved": serializers.IntegerField(),
            "window_days": serializers.IntegerField(),
            "requests_by_tier": serializers.DictField(child=serializers.IntegerField()),
            "hit_rate": serializers.FloatField()})},
    )
    def get(self, request: Request) -> Response:
        org = resolve_org(principal_of(request), request.query_params.get("org_id"))
        days = _days(request.query_params.get("days"))
        stats = selectors.cache_stats(organization_id=org.pk, window_days=days)
        return Response({
            "org_id": str(org.pk), "exact_entries": stats.exact_entries,
            "semantic_entries": stats.semantic_entries,
            "semantic_expired": stats.semantic_expired, "semantic_hits": stats.semantic_hits,
            "intermediate_entries": stats.intermediate_entries,
            "intermediate_rows": stats.intermediate_rows,
            "intermediate_hits": stats.intermediate_hits,
            "intermediate_tokens_saved": stats.intermediate_tokens_saved,
            "window_days": stats.window_days, "requests_by_tier": stats.requests_by_tier,
            "hit_rate": stats.hit_rate,
        })


def _days(raw: Any) -> int:
    from asahi_project.errors import InvalidRequest

    if raw in (None, ""):
        return 7
    try:
        days = int(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("days must be an integer", param="days") from exc
    if not 1 <= days <= 90:
        raise InvalidRequest("days must be between 1 and 90", param="days")
    return days


class CacheInvalidateView(APIView):
    """Delete cached entries of the caller's organization; audited as `cache_invalidated`."""

    permission_classes = [AdminScope]

    class Input(StrictSerializer):
        class Meta:
            ref_name = "CacheInvalidateInput"

        org_id = serializers.CharField(required=False, allow_blank=True,
                                       validators=[validate_name])
        scope = serializers.ChoiceField(choices=services.SCOPES)
        model = serializers.CharField(required=False, max_length=120, validators=[validate_name])
        # Bounded: a date before year 1 is an OverflowError, not an answer.
        older_than_seconds = serializers.IntegerField(required=False, min_value=0,
                                                      max_value=PG_INT_MAX)
        entry_id = serializers.CharField(required=False, max_length=128,
                                         validators=[validate_name])

    @extend_schema(request=Input, responses={200: inline_serializer("CacheInvalidation", {
        "scope": serializers.CharField(), "exact_keys": serializers.IntegerField(),
        "semantic_rows": serializers.IntegerField(),
        "intermediate_keys": serializers.IntegerField(),
        "intermediate_rows": serializers.IntegerField()})})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        org = resolve_org(principal, v.get("org_id"))
        result = services.cache_invalidate(
            organization_id=org.pk, scope=v["scope"], actor=principal.actor,
            model=v.get("model"), older_than_seconds=v.get("older_than_seconds"),
            entry_id=v.get("entry_id"), ip=client_ip(request))
        return Response(result.as_dict())
