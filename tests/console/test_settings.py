"""The settings page: keys shown once, revoke and rotate, members and roles with an owner always
left, policy and alerts within the API's bounds; forms name the wrong field and keep the input;
every change is audited with the user as actor."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client

from governance.keys import hash_key
from governance.models import ApiKey, AuditEvent, Membership, Policy
from tests.console.conftest import ConsoleOrg

pytestmark = pytest.mark.django_db


def _audit(org: ConsoleOrg, action: str) -> AuditEvent:
    return AuditEvent.objects.filter(organization_id=org.org.id, action=action).latest("id")


def test_issued_key_is_shown_once_and_stored_hashed(org_a: ConsoleOrg) -> None:
    client = org_a.client("admin")
    response = client.post("/settings/keys/", {"name": "billing", "scopes": ["infer", "analytics"],
                                               "expires_in_days": "7"})
    assert response.status_code == 200
    key = ApiKey.objects.filter(organization=org_a.org, name="billing").get()
    raw = response.context["raw_key"]
    assert raw.startswith(key.prefix) and f'id="raw-key">{raw}<' in response.content.decode()
    assert key.key_hash == hash_key(raw)
    assert key.scopes == ["infer", "analytics"] and key.created_by == org_a.users["admin"]
    assert key.expires_at is not None
    # Never again: not on the next page view, and not kept in the session.
    again = client.get("/settings/").content.decode()
    assert raw not in again and key.prefix in again
    assert raw not in str(dict(client.session))
    event = _audit(org_a, "api_key_created")
    assert event.actor == "user:admin@acme.test" and event.target_id == key.prefix


def test_issue_key_form_errors_keep_the_input(org_a: ConsoleOrg) -> None:
    response = org_a.client("admin").post("/settings/keys/", {"name": "nightly job",
                                                              "expires_in_days": "0"})
    assert response.status_code == 400
    form = response.context["key_form"]
    assert set(form.errors) == {"scopes", "expires_in_days"}
    html = response.content.decode()
    assert 'value="nightly job"' in html
    assert "Ensure this value is greater than or equal to 1." in html
    assert not ApiKey.objects.filter(name="nightly job").exists()


def test_revoke_and_rotate(org_a: ConsoleOrg) -> None:
    client = org_a.client("admin")
    old = org_a.key
    response = client.post(f"/settings/keys/{old.prefix}/rotate/")
    assert response.status_code == 200
    new = response.context["new_key"]
    old.refresh_from_db()
    assert old.revoked_at is not None and new.revoked_at is None and new.scopes == old.scopes
    assert hash_key(response.context["raw_key"]) == new.key_hash
    assert _audit(org_a, "api_key_rotated").actor == "user:admin@acme.test"

    response = client.post(f"/settings/keys/{new.prefix}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/settings/#keys"
    new.refresh_from_db()
    assert new.revoked_at is not None
    assert _audit(org_a, "api_key_revoked").target_id == new.prefix
    # A revoked key cannot be rotated back to life.
    response = client.post(f"/settings/keys/{new.prefix}/rotate/")
    assert response.status_code == 302
    assert ApiKey.objects.filter(organization=org_a.org, revoked_at__isnull=True).count() == 0


def test_owner_adds_a_new_member_who_gets_a_link_to_set_a_password(
        org_a: ConsoleOrg, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the mail is sent after commit
        response = org_a.client("owner").post("/settings/members/",
                                              {"email": "Newbie@Acme.test", "role": "admin"},
                                              HTTP_HOST="localhost")
    assert response.status_code == 302
    member = Membership.objects.get(user__username="newbie@acme.test")
    assert member.organization == org_a.org and member.role == "admin"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["newbie@acme.test"]
    link = next(w for w in mail.outbox[0].body.split() if w.startswith("http://localhost/"))
    path = link.removeprefix("http://localhost")
    fresh = Client()
    form_page = fresh.get(path, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    done = fresh.post(form_page.redirect_chain[-1][0], {
        "new_password1": "correct-horse-battery-9", "new_password2": "correct-horse-battery-9"})
    assert done.status_code == 302
    assert Client().login(username="newbie@acme.test", password="correct-horse-battery-9")
    event = _audit(org_a, "membership_created")
    assert event.actor == "user:owner@acme.test" and event.details["role"] == "admin"


def test_a_user_of_another_organization_cannot_be_added(org_a: ConsoleOrg,
                                                        org_b: ConsoleOrg) -> None:
    response = org_a.client("owner").post("/settings/members/",
                                          {"email": "viewer@globex.test", "role": "member"})
    assert response.status_code == 400
    assert "already belongs to an organization" in str(response.context["member_form"]
                                                       .errors["email"])
    assert org_b.users["viewer"].membership.organization == org_b.org


def test_member_form_names_the_wrong_field(org_a: ConsoleOrg) -> None:
    response = org_a.client("owner").post("/settings/members/", {"email": "not-an-email",
                                                                 "role": "boss"})
    assert response.status_code == 400
    assert set(response.context["member_form"].errors) == {"email", "role"}
    assert 'value="not-an-email"' in response.content.decode()


def test_role_change_and_removal_are_audited(org_a: ConsoleOrg) -> None:
    client = org_a.client("owner")
    target = org_a.target
    assert client.post(f"/settings/members/{target.pk}/role/", {"role": "admin"}).status_code == 302
    target.refresh_from_db()
    assert target.role == "admin"
    event = _audit(org_a, "membership_role_changed")
    assert event.details == {"old": "viewer", "new": "admin"}
    assert event.actor == "user:owner@acme.test"
    assert client.post(f"/settings/members/{target.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=target.pk).exists()
    assert _audit(org_a, "membership_removed").target_id == "target@acme.test"
    # The removed user can no longer open console pages.
    removed = Client()
    removed.force_login(target.user)
    assert removed.get("/settings/").status_code == 403


def test_the_last_owner_can_be_neither_demoted_nor_removed(org_a: ConsoleOrg) -> None:
    client = org_a.client("owner")
    own = org_a.users["owner"].membership
    response = client.post(f"/settings/members/{own.pk}/role/", {"role": "admin"})
    assert response.status_code == 409
    assert "needs an owner" in response.content.decode()
    assert client.post(f"/settings/members/{own.pk}/remove/").status_code == 409
    own.refresh_from_db()
    assert own.role == "owner"
    # With a second owner, the first may step down.
    admin = org_a.users["admin"].membership
    assert client.post(f"/settings/members/{admin.pk}/role/", {"role": "owner"}).status_code == 302
    assert client.post(f"/settings/members/{own.pk}/role/", {"role": "admin"}).status_code == 302
    own.refresh_from_db()
    assert own.role == "admin"


def test_policy_update_is_applied_and_audited(org_a: ConsoleOrg) -> None:
    response = org_a.client("admin").post("/settings/policy/", {
        "daily_budget_usd": "12.5", "monthly_budget_usd": "", "rpm_limit": "60",
        "cache_enabled": "on", "cache_ttl_seconds": "600", "cache_max_temperature": "0.2",
        "semantic_threshold": "0.93"})
    assert response.status_code == 302
    policy = Policy.objects.get(organization=org_a.org)
    assert policy.daily_budget_usd == Decimal("12.5") and policy.monthly_budget_usd is None
    assert policy.rpm_limit == 60 and policy.cache_ttl_seconds == 600
    assert policy.semantic_cache_enabled is False and policy.semantic_threshold == 0.93
    event = _audit(org_a, "policy_updated")
    assert event.actor == "user:admin@acme.test"
    assert event.details["daily_budget_usd"] == {"old": None, "new": "12.500000000"}


def test_policy_outside_the_platform_bounds_is_refused_field_by_field(org_a: ConsoleOrg) -> None:
    response = org_a.client("admin").post("/settings/policy/", {
        "daily_budget_usd": "-1", "cache_ttl_seconds": "999999999", "cache_max_temperature": "3",
        "semantic_threshold": "1.5", "allowed_models": ["no-such-model"], "rpm_limit": "abc"})
    assert response.status_code == 400
    errors = response.context["policy_form"].errors
    assert set(errors) == {"daily_budget_usd", "cache_max_temperature", "semantic_threshold",
                           "allowed_models", "rpm_limit"}
    html = response.content.decode()
    assert 'value="999999999"' in html and 'value="abc"' in html
    assert not AuditEvent.objects.filter(organization_id=org_a.org.id,
                                         action="policy_updated").exists()


def test_cache_ttl_bound_comes_from_the_api_serializer(org_a: ConsoleOrg) -> None:
    response = org_a.client("admin").post("/settings/policy/", {
        "cache_ttl_seconds": "999999999", "cache_max_temperature": "0.5"})
    assert response.status_code == 400
    assert "cache_ttl_seconds" in response.context["policy_form"].errors
    assert Policy.objects.get(organization=org_a.org).cache_ttl_seconds == 86_400


def test_alert_recipients(org_a: ConsoleOrg) -> None:
    client = org_a.client("admin")
    bad = client.post("/settings/alerts/", {"alert_emails": "ops@acme.test\nnope"})
    assert bad.status_code == 400
    assert "Not an email address: nope" in str(bad.context["alerts_form"].errors["alert_emails"])
    # The SSRF guard (asahi_project/netguard.py) is the service's check: a field error, kept input.
    private = client.post("/settings/alerts/", {"alert_emails": "ops@acme.test",
                                                "alert_webhook_url": "http://10.0.0.7/hook"})
    assert private.status_code == 400
    assert "private" in str(private.context["alerts_form"].errors["alert_webhook_url"])
    assert 'value="http://10.0.0.7/hook"' in private.content.decode()
    assert Policy.objects.get(organization=org_a.org).alert_webhook_url != "http://10.0.0.7/hook"
    # A public address literal: it needs no DNS on this offline machine.
    ok = client.post("/settings/alerts/", {"alert_emails": "ops@acme.test, cfo@acme.test",
                                           "alert_webhook_url": "https://93.184.216.34/asahi"})
    assert ok.status_code == 302
    policy = Policy.objects.get(organization=org_a.org)
    assert policy.alert_emails == ["ops@acme.test", "cfo@acme.test"]
    assert policy.alert_webhook_url == "https://93.184.216.34/asahi"
    assert _audit(org_a, "policy_updated").details["alert_emails"]["new"] == [
        "ops@acme.test", "cfo@acme.test"]


def test_viewer_sees_settings_read_only(org_a: ConsoleOrg) -> None:
    html = org_a.client("viewer").get("/settings/").content.decode()
    assert org_a.key.prefix in html and "owner@acme.test" in html
    assert "Issue key" not in html and "Revoke" not in html and "Add member" not in html
    assert "<fieldset disabled" in html


def test_settings_page_queries_do_not_grow_with_keys_and_members(org_a: ConsoleOrg) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance import services
    from inference.selectors import invalidate_catalogue

    client = org_a.client("owner")

    def count() -> int:
        invalidate_catalogue()  # both counts include loading the model catalogue snapshot
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/settings/").status_code == 200
        return len(ctx)

    before = count()
    for i in range(10):
        services.api_key_issue(organization=org_a.org, actor="test", name=f"k{i}",
                               created_by=org_a.users["admin"])
        services.membership_add(organization=org_a.org, email=f"extra{i}@acme.test",
                                role="member", actor="test")
    assert count() == before


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner() -> None:
    """Each owner demotes the other at the same moment: one wins, the other is refused, and the
    organization keeps an owner (the organization row lock serializes the owner count)."""
    import threading

    from django.db import connection

    from governance import services
    from tests.console.conftest import make_console_org

    org = make_console_org("Race", "race.test")
    for attempt in range(8):  # a lost race is timing-dependent: try several times
        owners = list(Membership.objects.filter(organization=org.org)
                      .exclude(user__username__startswith="target").order_by("pk")[:2])
        for m in owners:
            services.membership_set_role(organization=org.org, membership_id=m.pk,
                                         role="owner", actor="test")
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def demote(target: int) -> None:
            try:
                barrier.wait()
                services.membership_set_role(organization=org.org, membership_id=target,
                                             role="member", actor="test")
                outcomes.append("ok")
            except Exception as exc:  # the refusal under test
                outcomes.append(getattr(exc, "code", repr(exc)))
            finally:
                connection.close()

        threads = [threading.Thread(target=demote, args=(m.pk,)) for m in owners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcomes) == ["last_owner", "ok"], attempt
        assert Membership.objects.filter(organization=org.org, role="owner").count() == 1
