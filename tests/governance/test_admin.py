"""The operator console: pages load, key actions show the secret once, every change is audited."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from governance.models import ApiKey, AuditEvent, Policy
from inference.models import Provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-12345")
    client.force_login(user)
    return client


@pytest.mark.parametrize("url", [
    "/admin/", "/admin/governance/organization/", "/admin/governance/apikey/",
    "/admin/governance/auditevent/", "/admin/governance/policy/",
    "/admin/inference/modelendpoint/", "/admin/inference/provider/",
    "/admin/inference/inferenceevent/", "/admin/inference/ledgerdeadletter/",
])
def test_console_pages_load(operator: Client, tenant, catalogue, url: str) -> None:
    response = operator.get(url)
    assert response.status_code == 200
    assert b"Asahi" in response.content


def test_issue_key_action_shows_secret_once_and_audits(operator: Client, tenant) -> None:
    before = ApiKey.objects.filter(organization=tenant.org).count()
    response = operator.post("/admin/governance/organization/", {
        "action": "issue_key", "_selected_action": [str(tenant.org.pk)]}, follow=True)
    assert response.status_code == 200
    new = ApiKey.objects.filter(organization=tenant.org).order_by("-created_at").first()
    assert ApiKey.objects.filter(organization=tenant.org).count() == before + 1
    page = response.content.decode()
    assert new.prefix in page  # the raw key starts with the prefix and is in the message
    assert AuditEvent.objects.filter(action="api_key_created", target_id=new.prefix,
                                     actor="user:op").exists()
    # Shown once: the key's change page never shows it again.
    again = operator.get(f"/admin/governance/apikey/{new.pk}/change/").content.decode()
    assert "shown only this once" not in again and new.key_hash not in again


def test_revoke_and_rotate_actions(operator: Client, tenant) -> None:
    key = tenant.infer.key
    operator.post("/admin/governance/apikey/", {"action": "revoke_keys",
                                                "_selected_action": [str(key.pk)]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key_revoked", target_id=key.prefix).exists()
    other = tenant.analytics.key
    operator.post("/admin/governance/apikey/", {"action": "rotate_keys",
                                                "_selected_action": [str(other.pk)]})
    other.refresh_from_db()
    assert other.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key_rotated", target_id=other.prefix).exists()


def test_admin_change_writes_audit_event(operator: Client, tenant) -> None:
    policy = Policy.objects.get(organization=tenant.org)
    url = f"/admin/governance/policy/{policy.pk}/change/"
    form = operator.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items()}
    data.update({"organization": tenant.org.pk, "rpm_limit": 42, "allowed_models": "",
                 "allowed_providers": "", "alert_emails": ""})
    data = {k: v for k, v in data.items() if not isinstance(v, list)}
    for flag in ("cache_enabled", "semantic_cache_enabled"):
        data[flag] = "on"
    for flag in ("pii_redaction", "freeze_keys_on_anomaly"):
        data.pop(flag, None)
    response = operator.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert policy.rpm_limit == 42
    event = AuditEvent.objects.filter(action="admin_change", target_type="policy").first()
    assert event is not None and event.actor == "user:op"
    assert event.organization_id == tenant.org.pk


def test_provider_key_is_write_only_and_encrypted(operator: Client) -> None:
    response = operator.post("/admin/inference/provider/add/", {
        "name": "vllm-local", "kind": "openai-compatible", "base_url": "http://127.0.0.1:8001/v1",
        "enabled": "on", "timeout_seconds": "30", "api_key": "sk-very-secret-value"})
    assert response.status_code == 302
    provider = Provider.objects.get(name="vllm-local")
    assert "sk-very-secret-value" not in provider.api_key_encrypted
    assert provider.get_api_key() == "sk-very-secret-value"
    page = operator.get(f"/admin/inference/provider/{provider.pk}/change/").content.decode()
    assert "sk-very-secret-value" not in page
    assert AuditEvent.objects.filter(action="admin_add", target_type="provider").exists()
