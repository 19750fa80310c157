"""Names and ids refuse control and bidirectional-formatting characters everywhere they enter
(API, management commands, admin); NUL never reaches PostgreSQL; mail subjects are escaped."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from asahi_project.textrules import escape_unsafe, header_safe, name_problem, text_problem
from governance.models import ApiKey, Organization

pytestmark = pytest.mark.django_db

BAD_NAMES = {
    "CR/LF": "Acme\r\nBcc: victim@example.com",
    "LF": "Acme\nInc",
    "ESC": "Acme\x1b[31mRed",
    "BEL": "Acme\x07",
    "RLO": "Acme\u202egnp.exe",
    "isolate": "Acme\u2066x\u2069",
    "C1": "Ac\x85me",
    "DEL": "Acme\x7f",
    "line separator": "Acme\u2028Inc",
    "NUL": "Acme\x00",
}


@pytest.fixture(autouse=True)
def _fresh_throttle():  # the signup throttle counts in the shared cache
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def post(client: Client, path: str, body: object, **headers: str):
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["param"] == field, body
    assert field in body["error"]["message"]
    assert body["request_id"] == response["X-Request-ID"]


def test_rules() -> None:
    assert name_problem("Café Zürich 東京 (Ops) — ünïcode") is None
    assert text_problem("line\nline\ttab\x1b[0m \u202e ok") is None
    for bad in BAD_NAMES.values():
        assert name_problem(bad), repr(bad)
    assert text_problem("a\x00b") and text_problem("a\ud800b")
    assert escape_unsafe("Acme\r\nBcc: x\u202e") == "Acme\\u000d\\u000aBcc: x\\u202e"
    assert header_safe("why: \x00\x1b\x7f é\n日") == "why: \\x00\\x1b\\x7f \\xe9 \\u65e5"


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_signup_refuses_bad_org_names(client: Client, case: str) -> None:
    assert_refused(post(client, "/signup", {"org_name": BAD_NAMES[case], "user_id": "u1"}),
                   "org_name")
    assert not Organization.objects.filter(name__startswith="Acme").exists()


@pytest.mark.parametrize(("field", "value"), [
    ("user_id", "bob\u202e"), ("user_id", "bob\r\nx"), ("email", "a@b\u202ec.com"),
    ("email", "a@b.com\x00")])
def test_signup_refuses_bad_user_ids_and_emails(client: Client, field: str, value: str) -> None:
    body = {"org_name": "Fine Org", "user_id": "u1", field: value}
    assert_refused(post(client, "/signup", body), field)


def test_signup_accepts_unicode_names(client: Client) -> None:
    response = post(client, "/signup", {"org_name": "Zürich Café 東京", "user_id": "jürgen"})
    assert response.status_code == 201, response.content
    assert Organization.objects.filter(name="Zürich Café 東京").exists()


@pytest.mark.parametrize("case", ["CR/LF", "ESC", "BEL", "RLO"])
def test_management_commands_refuse_bad_org_names(case: str) -> None:
    with pytest.raises(CommandError, match="org_name must not contain"):
        call_command("create_org", BAD_NAMES[case], stdout=StringIO())
    with pytest.raises(CommandError, match="org_name must not contain"):
        call_command("issue_key", "--org", BAD_NAMES[case], "--create-org", stdout=StringIO())
    assert not Organization.objects.filter(name__startswith="Acme").exists()


@pytest.fixture
def operator(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-12345")
    client.force_login(user)
    return client


@pytest.mark.parametrize("case", ["CR/LF", "ESC", "BEL", "RLO"])
def test_admin_refuses_bad_org_names(operator: Client, case: str) -> None:
    response = operator.post("/admin/governance/organization/add/", {
        "name": BAD_NAMES[case], "is_active": "on",
        **{f"{p}-TOTAL_FORMS": "0" for p in ("policy", "api_keys", "memberships")},
        **{f"{p}-INITIAL_FORMS": "0" for p in ("policy", "api_keys", "memberships")}})
    assert response.status_code == 200  # the form again, with the error
    assert "must not contain" in response.content.decode()
    assert not Organization.objects.filter(name__startswith="Acme").exists()
    ok = operator.post("/admin/governance/organization/add/", {
        "name": "Acme Good", "is_active": "on",
        **{f"{p}-TOTAL_FORMS": "0" for p in ("policy", "api_keys", "memberships")},
        **{f"{p}-INITIAL_FORMS": "0" for p in ("policy", "api_keys", "memberships")}})
    assert ok.status_code == 302, ok.content.decode()[:2000]
    assert Organization.objects.filter(name="Acme Good").exists()


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/governance/api-keys", {"name": "ci\u202e"}, "name"),
    ("/governance/api-keys", {"name": "ci", "allowed_models": ["gpt-4o\x1b"]}, "allowed_models"),
    ("/governance/api-keys", {"name": "ci\x00"}, "name"),
    ("/cache/invalidate", {"scope": "all", "model": "gpt\x07"}, "model"),
    ("/cache/invalidate", {"scope": "all", "entry_id": "e\u2067"}, "entry_id"),
])
def test_governance_identifiers_refuse_bad_characters(client: Client, tenant, path: str,
                                                      body: dict, field: str) -> None:
    response = post(client, path, body, **tenant.headers("admin"))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"].startswith(field)


def test_policy_fields_refuse_bad_characters(client: Client, tenant) -> None:
    url = f"/governance/policies/{tenant.org.id}"
    for body, field in (({"reference_model": "gpt\r\n4o"}, "reference_model"),
                        ({"allowed_providers": ["openai\u202e"]}, "allowed_providers"),
                        ({"alert_emails": ["ops@exa\u202emple.com"]}, "alert_emails")):
        response = post(client, url, body, **tenant.headers("admin"))
        assert response.status_code == 400, response.content
        assert response.json()["error"]["param"].startswith(field)


def test_nul_anywhere_in_a_drf_body_names_the_field(client: Client, tenant) -> None:
    response = post(client, f"/governance/policies/{tenant.org.id}",
                    {"allowed_models": ["gpt-4o-mini", "x\u0000"]}, **tenant.headers("admin"))
    assert_refused(response, "allowed_models[1]")
    assert "NUL" in response.json()["error"]["message"]
    # Lone surrogates: valid JSON, not encodable as UTF-8, so PostgreSQL cannot take them either.
    response = client.post("/signup", data=b'{"org_name": "a\\ud800b", "user_id": "u"}',
                           content_type="application/json")
    assert_refused(response, "org_name")


@pytest.mark.parametrize("url", [
    "/governance/audit?action=%00", "/governance/audit?actor=a%00b&limit=5",
    "/governance/api-keys/ask_%00", "/analytics/cost-summary?org_id=%00",
])
def test_nul_in_the_url_is_a_400(client: Client, tenant, url: str) -> None:
    response = client.get(url, **tenant.headers("admin")) if "api-keys" not in url else \
        client.delete(url, **tenant.headers("admin"))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_characters"


def test_alert_subjects_escape_names_stored_before_the_rules(tenant, settings) -> None:
    from analytics.services import notify
    from governance.models import Policy

    Organization.objects.filter(pk=tenant.org.pk).update(name="Old\r\nBcc: x\u202e")
    policy = Policy.objects.get(organization=tenant.org)
    policy.alert_emails = ["ops@example.com"]
    tenant.org.refresh_from_db()
    notify(policy=policy, subject=f"[Asahi] {tenant.org.name}: 80% of the daily budget",
           payload={})
    assert len(mail.outbox) == 1
    subject = mail.outbox[0].subject
    assert "\n" not in subject and "\r" not in subject and "\u202e" not in subject
    assert subject.startswith("[Asahi] Old\\u000d\\u000aBcc: x\\u202e")


def test_api_key_names_in_the_admin(operator: Client, tenant) -> None:
    key = tenant.admin.key
    response = operator.post(f"/admin/governance/apikey/{key.pk}/change/", {
        "name": "ops\u202e", "scopes": "admin"})
    assert response.status_code == 200 and "must not contain" in response.content.decode()
    assert ApiKey.objects.get(pk=key.pk).name == key.name
