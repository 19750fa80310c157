"""Governance HTTP API: signup, keys, policies, usage, audit, compliance (thin views over services)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from asahi_project.client_ip import client_ip
from asahi_project.drf_input import PG_INT_MAX, MoneyField, StrictSerializer
from asahi_project.errors import InvalidRequest, PermissionDenied
from asahi_project.textrules import validate_name
from governance import selectors, services
from governance.auth import AdminScope, Principal, principal_of
from governance.choices import FailureMode
from governance.models import ApiKey, Organization, Policy


def resolve_org(principal: Principal, org_id: Any | None) -> Organization:
    """The organization a request acts on: staff may name any; a key only its own."""
    if principal.context is not None:
        own = principal.context.org_id
        if org_id not in (None, "") and str(org_id) != str(own):
            try:
                uuid.UUID(str(org_id))
            except ValueError as exc:
                raise InvalidRequest("org_id must be a UUID", param="org_id") from exc
            raise PermissionDenied("this API key cannot act on another organization",
                                   code="organization_forbidden")
        return selectors.organization_get(org_id=own)
    if org_id in (None, ""):
        raise InvalidRequest("org_id is required for platform staff", param="org_id")
    return selectors.organization_get(org_id=org_id)


class ClientIpThrottle(ScopedRateThrottle):
    """DRF's scoped throttle keyed by `client_ip` (DRF's own key trusts X-Forwarded-For)."""

    def get_ident(self, request: Request) -> str:
        return client_ip(request) or "unknown"


class SignupView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientIpThrottle]
    throttle_scope = "signup"

    class Input(StrictSerializer):
        class Meta:
            ref_name = "SignupInput"

        org_name = serializers.CharField(max_length=120, validators=[validate_name])
        user_id = serializers.CharField(max_length=150, validators=[validate_name])
        email = serializers.EmailField(required=False, allow_blank=True, allow_null=True,
                                       validators=[validate_name])

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "SignupOutput"

        org_id = serializers.CharField()
        org_name = serializers.CharField()
        api_key = serializers.CharField(help_text="Shown only this once.")
        key_prefix = serializers.CharField()

    @extend_schema(request=Input, responses={201: Output}, auth=[])
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.signup(
            org_name=data.validated_data["org_name"], user_id=data.validated_data["user_id"],
            email=data.validated_data.get("email") or None, ip=client_ip(request),
        )
        return Response(
            self.Output({"org_id": str(result.organization.id), "org_name": result.organization.name,
                         "api_key": result.issued.raw, "key_prefix": result.issued.key.prefix}).data,
            status=201,
        )


class ApiKeyOutput(serializers.ModelSerializer):
    org_id = serializers.CharField(source="organization_id")

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "org_id", "scopes", "created_at", "expires_at", "revoked_at",
                  "last_used_at", "daily_budget_usd", "monthly_budget_usd", "rpm_limit",
                  "tpm_limit", "allowed_models"]


class ApiKeysView(APIView):
    permission_classes = [AdminScope]

    class Input(StrictSerializer):
        class Meta:
            ref_name = "ApiKeyCreateInput"

        org_id = serializers.CharField(required=False, allow_blank=True,
                                       validators=[validate_name])
        name = serializers.CharField(required=False, allow_blank=True, max_length=120, default="",
                                     validators=[validate_name])
        scopes = serializers.ListField(child=serializers.CharField(validators=[validate_name]),
                                       required=False)
        expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=3650)
        daily_budget_usd = MoneyField(required=False, min_value=0)
        monthly_budget_usd = MoneyField(required=False, min_value=0)
        rpm_limit = serializers.IntegerField(required=False, min_value=1, max_value=PG_INT_MAX)
        tpm_limit = serializers.IntegerField(required=False, min_value=1, max_value=PG_INT_MAX)
        allowed_models = serializers.ListField(
            child=serializers.CharField(max_length=120, validators=[validate_name]),
            required=False)

    class Output(ApiKeyOutput):
        api_key = serializers.CharField(help_text="The raw key, shown only this once.")

        class Meta(ApiKeyOutput.Meta):
            fields = [*ApiKeyOutput.Meta.fields, "api_key"]

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        org = resolve_org(principal, v.pop("org_id", None))
        issued = services.api_key_issue(
            organization=org, actor=principal.actor, name=v.get("name", ""),
            scopes=v.get("scopes"), expires_in_days=v.get("expires_in_days"),
            ip=client_ip(request), daily_budget_usd=v.get("daily_budget_usd"),
            monthly_budget_usd=v.get("monthly_budget_usd"), rpm_limit=v.get("rpm_limit"),
            tpm_limit=v.get("tpm_limit"), allowed_models=v.get("allowed_models"),
        )
        issued.key.api_key = issued.raw  # type: ignore[attr-defined]
        return Response(self.Output(issued.key).data, status=201)

    @extend_schema(parameters=[OpenApiParameter("org_id", str, required=False)],
                   responses={200: ApiKeyOutput(many=True)})
    def get(self, request: Request) -> Response:
        org = resolve_org(principal_of(request), request.query_params.get("org_id"))
        keys = ApiKey.objects.filter(organization=org).order_by("-created_at")[:500]
        return Response(ApiKeyOutput(keys, many=True).data)


class ApiKeyRevokeView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(request=None, responses={200: ApiKeyOutput})
    def delete(self, request: Request, prefix: str) -> Response:
        principal = principal_of(request)
        key = ApiKey.objects.filter(prefix=prefix).first()
        if key is None or (principal.context and key.organization_id != principal.context.org_id):
            from asahi_project.errors import NotFound

            raise NotFound(f"API key {prefix} not found", code="api_key_not_found")
        key = services.api_key_revoke(prefix=prefix, actor=principal.actor,
                                      ip=client_ip(request))
        return Response(ApiKeyOutput(key).data)


class PolicyIO(StrictSerializer):
    daily_budget_usd = MoneyField(min_value=0, required=False, allow_null=True)
    monthly_budget_usd = MoneyField(min_value=0, required=False, allow_null=True)
    max_cost_per_request_usd = MoneyField(min_value=0, required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=120, validators=[validate_name]), required=False)
    allowed_providers = serializers.ListField(
        child=serializers.CharField(max_length=120, validators=[validate_name]), required=False)
    rpm_limit = serializers.IntegerField(min_value=1, max_value=PG_INT_MAX, required=False,
                                         allow_null=True)
    tpm_limit = serializers.IntegerField(min_value=1, max_value=PG_INT_MAX, required=False,
                                         allow_null=True)
    cache_enabled = serializers.BooleanField(required=False)
    cache_ttl_seconds = serializers.IntegerField(min_value=1, max_value=31_536_000, required=False)
    cache_max_temperature = serializers.FloatField(min_value=0, max_value=2, required=False)
    semantic_cache_enabled = serializers.BooleanField(required=False)
    semantic_threshold = serializers.FloatField(min_value=0, max_value=1, required=False,
                                                allow_null=True)
    pii_redaction = serializers.BooleanField(required=False)
    retention_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    redis_failure_mode = serializers.ChoiceField(choices=FailureMode.choices, required=False)
    reference_model = serializers.CharField(max_length=120, required=False,
                                            validators=[validate_name])
    alert_emails = serializers.ListField(
        child=serializers.EmailField(validators=[validate_name]), required=False)
    alert_webhook_url = serializers.URLField(required=False, allow_blank=True)
    freeze_keys_on_anomaly = serializers.BooleanField(required=False)


def policy_payload(policy: Policy) -> dict[str, Any]:
    out = {name: getattr(policy, name) for name in services.POLICY_FIELDS}
    for name, value in out.items():
        if hasattr(value, "as_tuple"):
            out[name] = float(value)
    out["org_id"] = str(policy.organization_id)
    out["updated_at"] = policy.updated_at.isoformat()
    return out


class PolicyView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(responses={200: PolicyIO})
    def get(self, request: Request, org_id: str) -> Response:
        org = resolve_org(principal_of(request), org_id)
        policy, _ = Policy.objects.get_or_create(organization=org)
        return Response(policy_payload(policy))

    @extend_schema(request=PolicyIO, responses={200: PolicyIO})
    def post(self, request: Request, org_id: str) -> Response:
        principal = principal_of(request)
        org = resolve_org(principal, org_id)
        data = PolicyIO(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.policy_update(organization=org, actor=principal.actor,
                                        changes=dict(data.validated_data),
                                        ip=client_ip(request))
        return Response(policy_payload(policy))


class UsageView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(parameters=[OpenApiParameter("org_id", str, required=False),
                               OpenApiParameter("period", str, enum=["day", "month"])],
                   responses={200: inline_serializer("Usage", {
                       "org_id": serializers.CharField(), "period": serializers.CharField(),
                       "request_count": serializers.IntegerField(),
                       "total_cost_usd": serializers.FloatField(),
                       "policy_limits": serializers.DictField()})})
    def get(self, request: Request) -> Response:
        period = request.query_params.get("period", "day")
        if period not in ("day", "month"):
            raise InvalidRequest("period must be one of: day, month", param="period")
        org = resolve_org(principal_of(request), request.query_params.get("org_id"))
        return Response(selectors.usage_for_org(org=org, period=period))


def _parse_dt(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    from django.utils.dateparse import parse_date, parse_datetime

    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is not None:
            parsed = datetime(day.year, day.month, day.day)
    if parsed is None:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or datetime", param=name)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be an integer", param=name) from exc
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}", param=name)
    return value


class AuditEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    org_id = serializers.CharField(source="organization_id", allow_null=True)
    actor = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    ip = serializers.CharField(allow_null=True)
    request_id = serializers.CharField()
    details = serializers.JSONField()


class AuditView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(parameters=[
        OpenApiParameter("org_id", str), OpenApiParameter("action", str),
        OpenApiParameter("actor", str), OpenApiParameter("since", str),
        OpenApiParameter("until", str), OpenApiParameter("limit", int),
        OpenApiParameter("offset", int)],
        responses={200: inline_serializer("AuditPage", {
            "count": serializers.IntegerField(), "limit": serializers.IntegerField(),
            "offset": serializers.IntegerField(), "results": AuditEventOutput(many=True)})})
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        q = request.query_params
        org_ids: list[uuid.UUID] | None
        if principal.context is not None or q.get("org_id"):
            org_ids = [resolve_org(principal, q.get("org_id")).id]
        else:
            org_ids = None  # platform staff without a filter see everything
        limit = _int_param(request, "limit", 50, 1, 500)
        offset = _int_param(request, "offset", 0, 0, 10_000_000)
        qs = selectors.audit_events(org_ids=org_ids, action=q.get("action") or None,
                                    actor=q.get("actor") or None,
                                    since=_parse_dt(q.get("since"), "since"),
                                    until=_parse_dt(q.get("until"), "until"))
        page = list(qs[offset: offset + limit])
        return Response({"count": qs.count(), "limit": limit, "offset": offset,
                         "results": AuditEventOutput(page, many=True).data})


class ComplianceReportView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(parameters=[OpenApiParameter("org_id", str)],
                   responses={200: inline_serializer("ComplianceReport", {
                       "org_id": serializers.CharField(), "findings": serializers.ListField()})})
    def get(self, request: Request) -> Response:
        org = resolve_org(principal_of(request), request.query_params.get("org_id"))
        return Response(compliance_report(org=org))


def compliance_report(*, org: Organization) -> dict[str, Any]:
    from inference.models import InferencePayload, Provider

    now = timezone.now()
    policy, _ = Policy.objects.get_or_create(organization=org)
    keys = ApiKey.objects.filter(organization=org)
    active = keys.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
    month_ago = now - timedelta(days=30)
    actions = dict(
        selectors.audit_events(org_ids=[org.id], since=month_ago)
        .values_list("action").annotate(n=Count("id")).order_by()
    )
    oldest_payload = InferencePayload.objects.filter(organization=org).aggregate(
        oldest=Min("created_at"))["oldest"]
    findings: list[dict[str, str]] = []
    no_expiry = active.filter(expires_at__isnull=True).count()
    no_budget = active.filter(daily_budget_usd__isnull=True,
                              monthly_budget_usd__isnull=True).count()
    if no_expiry:
        findings.append({"severity": "medium", "finding": f"{no_expiry} active key(s) never expire"})
    if policy.daily_budget_usd is None and policy.monthly_budget_usd is None:
        findings.append({"severity": "high", "finding": "organization has no daily or monthly budget"})
    if not policy.pii_redaction:
        findings.append({"severity": "low", "finding": "PII redaction is off"})
    retention_ok = oldest_payload is None or (now - oldest_payload).days <= policy.retention_days + 1
    if not retention_ok:
        findings.append({"severity": "high",
                         "finding": "stored prompts older than the retention period exist"})
    return {
        "org_id": str(org.id),
        "org_name": org.name,
        "generated_at": now.isoformat(),
        "api_keys": {
            "total": keys.count(),
            "active": active.count(),
            "revoked": keys.filter(revoked_at__isnull=False).count(),
            "expired": keys.filter(revoked_at__isnull=True, expires_at__lte=now).count(),
            "active_without_expiry": no_expiry,
            "active_without_key_budget": no_budget,
            "storage": "sha256 hash only; raw keys are never stored",
        },
        "policy": policy_payload(policy),
        "data_retention": {
            "retention_days": policy.retention_days,
            "oldest_stored_prompt": oldest_payload.isoformat() if oldest_payload else None,
            "compliant": retention_ok,
        },
        "encryption": {
            "provider_keys_encrypted": True,
            "providers_with_stored_keys": Provider.objects.exclude(api_key_encrypted="").count(),
        },
        "audit_last_30_days": actions,
        "auth_failures_last_30_days": actions.get("auth_failure", 0),
        "findings": findings,
    }
