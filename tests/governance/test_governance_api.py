import json

import pytest
from django.core import mail
from django.test import Client

from governance.models import ApiKey, AuditEvent, Membership, Organization, Policy

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body: object, **headers: str):
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def test_signup_creates_org_owner_key_and_sends_welcome(client: Client, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "/signup", {"org_name": "Initech", "user_id": "peter",
                                              "email": "peter@initech.test"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"org_id", "org_name", "api_key", "key_prefix"}
    org = Organization.objects.get(pk=body["org_id"])
    assert org.name == "Initech"
    assert Membership.objects.get(organization=org).role == "owner"
    assert Policy.objects.filter(organization=org).exists()
    assert body["api_key"].startswith(body["key_prefix"] + "_")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["peter@initech.test"]
    assert body["api_key"] not in mail.outbox[0].body  # the key is shown once, not emailed
    # The key works.
    usage = client.get("/governance/usage", HTTP_AUTHORIZATION=f"Bearer {body['api_key']}")
    assert usage.status_code == 200


def test_signup_validation_and_conflict(client: Client) -> None:
    response = post(client, "/signup", {"org_name": "", "user_id": "x"})
    assert response.status_code == 400
    assert "org_name" in response.json()["error"]["message"]
    response = post(client, "/signup", {"org_name": "A", "user_id": "x", "plan": "gold"})
    assert response.status_code == 400
    assert "plan: unknown field" in response.json()["error"]["message"]
    assert post(client, "/signup", {"org_name": "Dup", "user_id": "a"}).status_code == 201
    response = post(client, "/signup", {"org_name": "Dup", "user_id": "b"})
    assert response.status_code == 409
    assert Organization.objects.filter(name="Dup").count() == 1


def test_one_user_id_signs_up_several_organizations(client: Client) -> None:
    """The JSON contract: an organization and a key for any user_id. A console user belongs to
    one organization, so the second one starts without a console owner, and the audit says so."""
    from governance.models import AuditEvent, Membership

    first = post(client, "/signup", {"org_name": "Staging", "user_id": "ci-bot"})
    second = post(client, "/signup", {"org_name": "Production", "user_id": "ci-bot"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["api_key"] != first.json()["api_key"]
    member = Membership.objects.get(user__username="ci-bot")
    assert str(member.organization_id) == first.json()["org_id"]
    assert AuditEvent.objects.filter(action="owner_membership_skipped",
                                     organization_id=second.json()["org_id"]).count() == 1


def test_signup_is_throttled_per_ip(client: Client, settings) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"signup": "2/hour"}}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    saved = ScopedRateThrottle.THROTTLE_RATES
    api_settings.reload()
    ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        codes = [post(client, "/signup", {"org_name": f"T{i}", "user_id": f"u{i}"}).status_code
                 for i in range(3)]
    finally:
        cache.clear()
        ScopedRateThrottle.THROTTLE_RATES = saved  # later tests get the configured rate back
    assert codes == [201, 201, 429]


def test_create_key_via_api_is_shown_once_and_scoped(client: Client, tenant) -> None:
    response = post(client, "/governance/api-keys", {"name": "ci", "scopes": ["infer"],
                                                      "expires_in_days": 30},
                    **tenant.headers("admin"))
    assert response.status_code == 201
    body = response.json()
    assert body["scopes"] == ["infer"] and body["api_key"].startswith(body["prefix"])
    listing = client.get("/governance/api-keys", **tenant.headers("admin")).json()
    assert all("api_key" not in row for row in listing)
    assert body["prefix"] in {row["prefix"] for row in listing}
    bad = post(client, "/governance/api-keys", {"scopes": ["root"]}, **tenant.headers("admin"))
    assert bad.status_code == 400 and "root" in bad.json()["error"]["message"]


def test_admin_key_cannot_touch_another_org(client: Client, tenant, outsider) -> None:
    other = str(outsider.org.id)
    assert client.get(f"/governance/policies/{other}", **tenant.headers("admin")).status_code == 403
    assert post(client, f"/governance/policies/{other}", {"rpm_limit": 1},
                **tenant.headers("admin")).status_code == 403
    assert post(client, "/governance/api-keys", {"org_id": other},
                **tenant.headers("admin")).status_code == 403
    assert client.get(f"/governance/usage?org_id={other}",
                      **tenant.headers("admin")).status_code == 403
    response = client.delete(f"/governance/api-keys/{outsider.infer.key.prefix}",
                             **tenant.headers("admin"))
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=outsider.infer.key.pk).revoked_at is None
    audit = client.get("/governance/audit", **tenant.headers("admin")).json()["results"]
    assert all(row["org_id"] == str(tenant.org.id) for row in audit)


def test_policy_update_is_validated_audited_and_transactional(client: Client, tenant) -> None:
    url = f"/governance/policies/{tenant.org.id}"
    response = post(client, url, {"daily_budget_usd": "12.5", "allowed_models": ["gpt-4o-mini"],
                                  "rpm_limit": 60}, **tenant.headers("admin"))
    assert response.status_code == 200, response.content
    assert response.json()["daily_budget_usd"] == 12.5
    event = AuditEvent.objects.filter(action="policy_updated").first()
    assert event.details["rpm_limit"] == {"old": None, "new": 60}
    # One bad field rejects the whole update: nothing half-written.
    response = post(client, url, {"rpm_limit": 5, "cache_max_temperature": 9},
                    **tenant.headers("admin"))
    assert response.status_code == 400
    assert "cache_max_temperature" in response.json()["error"]["message"]
    assert Policy.objects.get(organization=tenant.org).rpm_limit == 60
    response = post(client, url, {"budget": 1}, **tenant.headers("admin"))
    assert response.status_code == 400 and "budget" in response.json()["error"]["message"]


def test_unknown_org_is_404_for_staff(client: Client, settings) -> None:
    settings.ASAHI_ADMIN_SECRET = "s3cret-admin"
    response = client.get("/governance/policies/00000000-0000-0000-0000-000000000000",
                          HTTP_X_ADMIN_SECRET="s3cret-admin")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "organization_not_found"
    assert client.get("/governance/audit", HTTP_X_ADMIN_SECRET="wrong").status_code == 401


def test_usage_rejects_unknown_period(client: Client, tenant) -> None:
    response = client.get("/governance/usage?period=week", **tenant.headers("admin"))
    assert response.status_code == 400
    assert "day, month" in response.json()["error"]["message"]


def test_audit_filters_and_pagination(client: Client, tenant) -> None:
    response = client.get("/governance/audit?action=api_key_created&limit=2",
                          **tenant.headers("admin"))
    body = response.json()
    assert body["count"] == 3 and len(body["results"]) == 2
    assert {r["action"] for r in body["results"]} == {"api_key_created"}
    assert client.get("/governance/audit?limit=0", **tenant.headers("admin")).status_code == 400
    assert client.get("/governance/audit?since=yesterday",
                      **tenant.headers("admin")).status_code == 400


def test_compliance_report(client: Client, tenant) -> None:
    body = client.get("/governance/compliance/report", **tenant.headers("admin")).json()
    assert body["api_keys"]["active"] == 3
    assert body["api_keys"]["active_without_expiry"] == 3
    findings = {f["finding"] for f in body["findings"]}
    assert "organization has no daily or monthly budget" in findings


def test_oversize_body_is_413(client: Client, tenant, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = post(client, "/governance/api-keys", {"name": "x" * 5000},
                    **tenant.headers("admin"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
