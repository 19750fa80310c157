"""Signup in the browser (organization, owner with a password, first key shown once, through the
same service as the JSON API), login/logout, password change and reset, the landing page's
measured figures, and the API docs page's base URL."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from console.benchmarks import landing_figures
from governance.keys import hash_key
from governance.models import ApiKey, AuditEvent, Membership
from tests.console.conftest import PASSWORD, ConsoleOrg

pytestmark = pytest.mark.django_db
GOOD = {"org_name": "Initech", "email": "Peter@Initech.test", "password1": "tps-reports-2-go",
        "password2": "tps-reports-2-go"}


def test_signup_creates_org_owner_and_key_shown_once(client: Client) -> None:
    response = client.post("/signup/", GOOD)
    assert response.status_code == 200
    member = Membership.objects.select_related("organization", "user").get(
        user__username="peter@initech.test")
    assert member.role == "owner" and member.organization.name == "Initech"
    assert member.user.check_password("tps-reports-2-go")
    key = ApiKey.objects.get(organization=member.organization)
    raw = response.context["raw_key"]
    assert hash_key(raw) == key.key_hash and raw in response.content.decode()
    assert key.scopes == ["all"]
    # Logged in: the console opens, and the key is not shown again anywhere.
    settings_page = client.get("/settings/").content.decode()
    assert key.prefix in settings_page and raw not in settings_page
    actions = set(AuditEvent.objects.filter(organization_id=member.organization_id)
                  .values_list("action", flat=True))
    assert {"organization_created", "membership_created", "api_key_created"} <= actions


def test_signup_errors_name_the_field_and_keep_the_input(client: Client) -> None:
    response = client.post("/signup/", {**GOOD, "password1": "password", "password2": "password"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["password1"]
    assert "too common" in str(errors["password1"])
    html = response.content.decode()
    assert 'value="Initech"' in html and 'value="Peter@Initech.test"' in html
    assert 'value="password"' not in html  # passwords are never echoed back
    response = client.post("/signup/", {**GOOD, "password2": "something-else-7"})
    assert list(response.context["form"].errors) == ["password2"]
    response = client.post("/signup/", {**GOOD, "password1": "peter@initech",
                                        "password2": "peter@initech"})
    assert "too similar" in str(response.context["form"].errors["password1"])
    assert not Membership.objects.exists()


def test_signup_refuses_taken_email_and_organization(client: Client, org_a: ConsoleOrg) -> None:
    response = client.post("/signup/", {**GOOD, "email": "OWNER@acme.test"})
    assert response.status_code == 400 and "email" in response.context["form"].errors
    response = client.post("/signup/", {**GOOD, "org_name": "acme"})
    assert response.status_code == 400
    assert "already exists" in str(response.context["form"].errors["org_name"])
    # Nothing half-created: the user of the refused signup does not exist.
    assert not get_user_model().objects.filter(username="peter@initech.test").exists()


def test_the_json_signup_api_is_unchanged(client: Client) -> None:
    response = client.post("/signup", {"org_name": "Hooli", "user_id": "gavin"},
                           content_type="application/json")
    assert response.status_code == 201
    assert set(response.json()) == {"org_id", "org_name", "api_key", "key_prefix"}
    assert Membership.objects.get(user__username="gavin").role == "owner"


def test_login_logout_and_password_change(org_a: ConsoleOrg) -> None:
    client = Client()
    response = client.post("/login/", {"username": "member@acme.test", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert client.get("/settings/").status_code == 200
    response = client.post("/password/change/", {"old_password": PASSWORD,
                                                 "new_password1": "new-secret-phrase-77",
                                                 "new_password2": "new-secret-phrase-77"})
    assert response.status_code == 302
    assert client.get("/settings/").status_code == 200  # this session survives the change
    assert client.post("/logout/").status_code == 302
    assert client.get("/settings/").status_code == 302
    assert Client().login(username="member@acme.test", password="new-secret-phrase-77")


def test_login_with_next_and_wrong_password(org_a: ConsoleOrg) -> None:
    client = Client()
    response = client.post("/login/?next=/api-docs/", {"username": "viewer@acme.test",
                                                       "password": "wrong", "next": "/api-docs/"})
    assert response.status_code == 200
    assert "enter a correct" in response.content.decode().lower()
    assert 'value="viewer@acme.test"' in response.content.decode()
    response = client.post("/login/", {"username": "viewer@acme.test", "password": PASSWORD,
                                       "next": "/api-docs/"})
    assert response["Location"] == "/api-docs/"


def test_password_reset_mail_goes_through_the_email_backend(org_a: ConsoleOrg) -> None:
    client = Client()
    assert client.post("/password/reset/", {"email": "admin@acme.test"}).status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["admin@acme.test"] and message.subject == "Reset your Asahi password"
    path = re.search(r"https?://[^/\s]+(/password/reset/\S+)", message.body).group(1)
    page = client.get(path, follow=True)
    assert page.context["validlink"]
    client.post(page.redirect_chain[-1][0], {"new_password1": "reset-phrase-31x",
                                             "new_password2": "reset-phrase-31x"})
    assert Client().login(username="admin@acme.test", password="reset-phrase-31x")
    # Unknown addresses get the same answer and no mail.
    assert client.post("/password/reset/", {"email": "nobody@acme.test"}).status_code == 302
    assert len(mail.outbox) == 1


def test_landing_shows_the_measured_figures_from_benchmarks_md(client: Client) -> None:
    doc = (settings.BASE_DIR / "docs" / "benchmarks.md").read_text()
    figures = landing_figures()
    assert len(figures) >= 3
    html = client.get("/").content.decode()
    for figure in figures:
        assert figure.value.rstrip("%") in doc  # taken from the document, not typed in
        assert f"<strong>{figure.value}</strong>" in html
    assert 'href="/signup/"' in html and 'href="/login/"' in html


def test_api_docs_use_this_servers_base_url(org_a: ConsoleOrg) -> None:
    html = org_a.client("viewer").get("/api-docs/", HTTP_HOST="localhost:8123").content.decode()
    assert 'base_url="http://localhost:8123/v1"' in html
    assert "curl http://localhost:8123/v1/chat/completions" in html
    assert 'href="/docs"' in html and 'href="/redoc"' in html


def test_pages_load_nothing_from_another_host(org_a: ConsoleOrg) -> None:
    client = org_a.client("owner")
    for path in ("/", "/signup/", "/settings/", "/api-docs/"):
        html = (client if path not in ("/", "/signup/") else Client()).get(path).content.decode()
        refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert refs and all(not r.startswith(("http://", "https://", "//")) for r in refs), refs
        for ref in refs:
            if ref.startswith("/static/"):
                assert client.get(ref).status_code == 200, ref


@pytest.fixture
def signup_rate_2(settings):
    """The signup throttle at 2/hour (DRF reads its rates once at import: restored by hand)."""
    from django.core.cache import cache
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    saved = ScopedRateThrottle.THROTTLE_RATES
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"signup": "2/hour"}}
    api_settings.reload()
    ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    cache.delete("throttle_signup_127.0.0.1")
    yield
    cache.delete("throttle_signup_127.0.0.1")
    ScopedRateThrottle.THROTTLE_RATES = saved


def test_the_signup_page_shares_the_apis_signup_throttle(signup_rate_2) -> None:
    api = Client().post("/signup", {"org_name": "Via API", "user_id": "api-user"},
                        content_type="application/json")
    assert api.status_code == 201
    # A form with errors does not use up the budget (nothing would be created).
    assert Client().post("/signup/", {**GOOD, "password2": "typo"}).status_code == 400
    first = Client().post("/signup/", GOOD)
    assert first.status_code == 200
    second = Client().post("/signup/", {**GOOD, "org_name": "Second", "email": "b@second.test"})
    assert second.status_code == 429
    assert "Too many signups from your address" in second.content.decode()
    assert 'value="Second"' in second.content.decode()
    assert not Membership.objects.filter(organization__name="Second").exists()
    # The JSON API sees the same counter.
    assert Client().post("/signup", {"org_name": "Third", "user_id": "t"},
                         content_type="application/json").status_code == 429


def test_staff_without_an_organization_land_in_the_admin(db: None) -> None:
    get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    response = Client().post("/login/", {"username": "ops", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
