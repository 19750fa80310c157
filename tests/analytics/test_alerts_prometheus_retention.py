"""Budget alerts (email, webhook, once per threshold), key freezing, Prometheus, retention,
the dashboard, and exact totals after real requests through the gateway."""

from __future__ import annotations

import ipaddress
import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from analytics.models import SentAlert
from analytics.rollup import floor_hour, run_rollup
from analytics.selectors import period_since
from analytics.services import run_alerts
from governance.models import ApiKey, AuditEvent, Policy
from inference.models import InferenceEvent
from tests.analytics.conftest import ledger, ledger_sums, seed_events

pytestmark = [pytest.mark.urls("tests.analytics.urls")]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def webhook_url(settings):  # type: ignore[no-untyped-def]
    # A receiver on loopback: allowed by the operator's allow-list only (asahi_project.netguard).
    settings.ASAHI_OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.1/32")]
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def _spend(tenant, usd: str, *, minutes_ago: int = 1) -> None:  # type: ignore[no-untyped-def]
    at = timezone.now() - timedelta(minutes=minutes_ago)
    InferenceEvent.objects.create(created_at=at, request_id=f"spend-{usd}-{minutes_ago}",
                                  organization=tenant.org, api_key_id=tenant.infer.key.pk,
                                  model="gpt-4o", status="ok", cost_usd=Decimal(usd))


@pytest.mark.django_db
def test_budget_thresholds_alert_once_by_email_webhook_and_audit(
        tenant, webhook_url, django_capture_on_commit_callbacks) -> None:
    Policy.objects.filter(organization=tenant.org).update(
        daily_budget_usd=Decimal("10"), alert_emails=["ops@example.com"],
        alert_webhook_url=webhook_url)
    _spend(tenant, "8.5")
    with django_capture_on_commit_callbacks(execute=True):
        report = run_alerts()
    assert report.budget_alerts == 1
    assert set(SentAlert.objects.filter(organization=tenant.org, kind="budget_daily")
               .values_list("threshold", flat=True)) == {50, 80}
    assert len(mail.outbox) == 1 and "80% of the daily budget" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ops@example.com"]
    assert _Receiver.received[-1]["threshold_percent"] == 80
    assert _Receiver.received[-1]["spent_usd"] == 8.5
    assert AuditEvent.objects.filter(organization=tenant.org, action="budget.alert").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert run_alerts().budget_alerts == 0  # nothing new: each threshold once per period
    assert len(mail.outbox) == 1 and len(_Receiver.received) == 1

    _spend(tenant, "2", minutes_ago=0)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_alerts().budget_alerts == 1
    assert _Receiver.received[-1]["thresholds"] == [100]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_severe_key_spend_anomaly_freezes_the_key(tenant) -> None:
    Policy.objects.filter(organization=tenant.org).update(freeze_keys_on_anomaly=True)
    start = floor_hour(timezone.now()) - timedelta(days=7)
    rows = [InferenceEvent(created_at=start + timedelta(hours=h, minutes=5),
                           request_id=f"base-{h}", organization_id=tenant.org.id,
                           api_key_id=tenant.infer.key.pk, model="gpt-4o-mini", status="ok",
                           latency_ms=400, cost_usd=Decimal("0.010") + Decimal(h % 5) / 1000)
            for h in range(7 * 24 - 1)]
    spike = floor_hour(timezone.now()) - timedelta(minutes=55)
    rows += [InferenceEvent(created_at=spike, request_id=f"spike-{i}",
                            organization_id=tenant.org.id, api_key_id=tenant.infer.key.pk,
                            model="gpt-4o", status="ok", latency_ms=400,
                            cost_usd=Decimal("5.0")) for i in range(20)]
    InferenceEvent.objects.bulk_create(rows)
    run_rollup()
    report = run_alerts()
    assert report.frozen_keys == 1
    key = ApiKey.objects.get(pk=tenant.infer.key.pk)
    assert key.frozen_at is not None and "spend anomaly" in key.frozen_reason
    assert ApiKey.objects.get(pk=tenant.analytics.key.pk).frozen_at is None
    assert AuditEvent.objects.filter(action="api_key.frozen", target_id=key.prefix).count() == 1
    # An admin unfreezes: the same episode does not freeze it again.
    ApiKey.objects.filter(pk=key.pk).update(frozen_at=None, frozen_reason="")
    assert run_alerts().frozen_keys == 0


@pytest.mark.django_db
def test_no_freeze_without_the_policy_flag(tenant) -> None:
    seed_events(org_id=tenant.org.id, key_ids=[tenant.infer.key.pk],
                start=timezone.now() - timedelta(days=2), end=timezone.now(), count=50)
    assert run_alerts().frozen_keys == 0
    assert not ApiKey.objects.filter(organization=tenant.org, frozen_at__isnull=False).exists()


@pytest.mark.django_db
def test_prometheus_with_scrape_token_covers_all_orgs(client, settings, tenant, outsider) -> None:
    settings.ASAHI_METRICS_SCRAPE_TOKEN = "scrape-secret"
    now = timezone.now()
    seed_events(org_id=tenant.org.id, key_ids=[None], start=now - timedelta(days=2), end=now,
                count=120, seed=3)
    seed_events(org_id=outsider.org.id, key_ids=[None], start=now - timedelta(days=1), end=now,
                count=30, seed=4)
    run_rollup()
    from analytics import metrics

    metrics.observe_request(org=str(tenant.org.id), model="gpt-4o", status="ok", cost_usd=0.01)
    r = client.get("/analytics/prometheus", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.content.decode())}
    assert "asahi_requests" in families  # the in-process counter (asahi_requests_total)
    requests = families["asahi_ledger_requests"]
    by_org: dict[str, float] = {}
    for s in requests.samples:
        by_org[s.labels["org"]] = by_org.get(s.labels["org"], 0) + s.value
    assert by_org == {str(tenant.org.id): 120, str(outsider.org.id): 30}
    cost = sum(s.value for s in families["asahi_ledger_cost_usd"].samples
               if s.labels["org"] == str(tenant.org.id))
    assert cost == pytest.approx(float(ledger_sums(ledger(tenant.org.id))["cost"]), abs=1e-9)


@pytest.mark.django_db
def test_prometheus_with_a_key_is_limited_to_its_org(client, settings, tenant, outsider) -> None:
    settings.ASAHI_METRICS_SCRAPE_TOKEN = "scrape-secret"
    now = timezone.now()
    seed_events(org_id=outsider.org.id, key_ids=[None], start=now - timedelta(hours=2), end=now,
                count=10)
    seed_events(org_id=tenant.org.id, key_ids=[None], start=now - timedelta(hours=2), end=now,
                count=5)
    r = client.get("/analytics/prometheus", **tenant.headers("analytics"))
    assert r.status_code == 200
    orgs = {s.labels.get("org") for f in text_string_to_metric_families(r.content.decode())
            for s in f.samples}
    assert orgs == {str(tenant.org.id)}
    assert client.get("/analytics/prometheus").status_code == 401
    assert client.get("/analytics/prometheus", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/analytics/prometheus", **tenant.headers("infer")).status_code == 403


@pytest.mark.django_db
def test_retention_deletes_old_payloads_and_semantic_entries_only(tenant, outsider) -> None:
    from caching.models import EMBEDDING_DIM, SemanticEntry
    from inference.models import InferencePayload
    from inference.tasks import apply_retention

    Policy.objects.filter(organization=tenant.org).update(retention_days=7)
    Policy.objects.filter(organization=outsider.org).update(retention_days=60)
    now = timezone.now()
    for org in (tenant.org, outsider.org):
        for days in (1, 30):
            InferencePayload.objects.create(created_at=now - timedelta(days=days),
                                            request_id=f"{org.name}-{days}", organization=org,
                                            prompt="p", response="r")
            entry = SemanticEntry.objects.create(
                organization=org, model="gpt-4o-mini", task_type="qa", embedder="e:1",
                embedding=[0.1] * EMBEDDING_DIM, prompt="p", answer={},
                expires_at=now + timedelta(days=90))
            SemanticEntry.objects.filter(pk=entry.pk).update(created_at=now - timedelta(days=days))
    seed_events(org_id=tenant.org.id, key_ids=[None], start=now - timedelta(days=30),
                end=now - timedelta(days=29), count=5)
    result = apply_retention(now=now)
    assert result.payloads_deleted == 1 and result.semantic_entries_deleted == 1
    assert list(InferencePayload.objects.filter(organization=tenant.org)
                .values_list("request_id", flat=True)) == ["acme-1"]
    assert InferencePayload.objects.filter(organization=outsider.org).count() == 2
    assert SemanticEntry.objects.filter(organization=outsider.org).count() == 2
    assert ledger(tenant.org.id).count() == 5  # the numeric ledger is kept


@pytest.mark.django_db
def test_dashboard_for_members_and_login_required(client, tenant) -> None:
    from django.contrib.auth import get_user_model

    from governance.models import Membership

    seed_events(org_id=tenant.org.id, key_ids=[None], start=timezone.now() - timedelta(days=1),
                end=timezone.now(), count=40)
    assert client.get("/dashboard/").status_code == 302
    # Platform staff keep the Django admin; the console shows an organization to its members.
    staff = get_user_model().objects.create_user("ops", password="pw-123456", is_staff=True)
    client.force_login(staff)
    assert client.get("/dashboard/", {"period": "7d"}).status_code == 403
    member = get_user_model().objects.create_user("finance", password="pw-123456")
    Membership.objects.create(organization=tenant.org, user=member, role="viewer")
    client.force_login(member)
    r = client.get("/dashboard/", {"period": "7d"})
    assert r.status_code == 200
    html = r.content.decode()
    assert "acme" in html and 'id="hits-chart"' in html
    assert f'data-card="requests">{ledger(tenant.org.id).count()}<' in html
    assert client.get("/dashboard/", {"period": "1y"}).status_code == 400


@pytest.mark.redis
def test_gateway_traffic_totals_match_ledger_everywhere(gateway, live_tenant, client) -> None:
    from inference.ledger import ledger as ledger_buffer
    from tests.inference.conftest import client_for

    sdk = client_for(gateway, live_tenant.infer.raw)
    prompts = ["What is 2+2?", "Name a prime", "What is 2+2?", "Capital of Japan?",
               "Name a prime", "What is 2+2?"]
    for i, prompt in enumerate(prompts):
        sdk.chat.completions.create(model="gpt-4o-mini" if i % 2 else "claude-haiku-4-5",
                                    messages=[{"role": "user", "content": prompt}])
    ledger_buffer.flush()
    run_rollup()
    everything = ledger_sums(ledger(live_tenant.org.id))
    assert everything["requests"] == len(prompts) and everything["hits"] >= 1
    # "day" starts at midnight UTC: compare with the ledger since then, so a run that crosses
    # midnight still checks the same thing.
    want = ledger_sums(ledger(live_tenant.org.id, period_since("day")))
    summary = client.get("/analytics/cost-summary", {"period": "day"},
                         **live_tenant.headers("analytics")).json()
    assert summary["total_requests"] == want["requests"]
    assert summary["total_cost"] == float(want["cost"])
    assert summary["cache_hit_rate"] == (round(want["hits"] / want["ok"], 6) if want["ok"] else 0.0)
    breakdown = client.get("/analytics/cost-breakdown", {"by": "model", "period": "day"},
                           **live_tenant.headers("analytics")).json()
    assert breakdown["total_cost"] == float(want["cost"])
    assert breakdown["total_requests"] == want["requests"]
    usage = client.get("/governance/usage", {"period": "day"},
                       **live_tenant.headers("admin")).json()
    assert usage["request_count"] == summary["total_requests"]
    assert usage["total_cost_usd"] == summary["total_cost"]
    # Folding again (and with the hour rolled) changes nothing.
    run_rollup(now=floor_hour(timezone.now()) + timedelta(hours=1))
    again = client.get("/analytics/cost-summary", {"period": "day"},
                       **live_tenant.headers("analytics")).json()
    assert again["total_cost"] == summary["total_cost"]
    assert again["total_requests"] == summary["total_requests"]
