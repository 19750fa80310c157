"""A user of organization B never reaches organization A's keys or members: every action on A's
objects answers 404 (as if they did not exist) and changes nothing; B's pages never list A's."""

from __future__ import annotations

import pytest

from governance.models import ApiKey, AuditEvent, Membership
from tests.console.conftest import ConsoleOrg

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", [
    lambda a: (f"/settings/keys/{a.key.prefix}/revoke/", {}),
    lambda a: (f"/settings/keys/{a.key.prefix}/rotate/", {}),
    lambda a: (f"/settings/members/{a.target.pk}/role/", {"role": "owner"}),
    lambda a: (f"/settings/members/{a.target.pk}/remove/", {}),
    lambda a: (f"/settings/members/{a.users['owner'].membership.pk}/role/", {"role": "viewer"}),
    lambda a: (f"/settings/members/{a.users['owner'].membership.pk}/remove/", {}),
], ids=["revoke key", "rotate key", "change role", "remove member", "demote owner",
        "remove owner"])
def test_org_b_owner_cannot_act_on_org_a(action, org_a: ConsoleOrg, org_b: ConsoleOrg) -> None:
    path, data = action(org_a)
    keys_before = list(ApiKey.objects.filter(organization=org_a.org)
                       .values_list("prefix", "revoked_at"))
    members_before = list(Membership.objects.filter(organization=org_a.org)
                          .values_list("user_id", "role"))
    audit_before = AuditEvent.objects.filter(organization=org_a.org).count()

    response = org_b.client("owner").post(path, data, HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert list(ApiKey.objects.filter(organization=org_a.org)
                .values_list("prefix", "revoked_at")) == keys_before
    assert list(Membership.objects.filter(organization=org_a.org)
                .values_list("user_id", "role")) == members_before
    assert AuditEvent.objects.filter(organization=org_a.org).count() == audit_before


def test_settings_page_lists_only_the_users_organization(org_a: ConsoleOrg,
                                                         org_b: ConsoleOrg) -> None:
    html = org_b.client("viewer").get("/settings/").content.decode()
    assert org_b.key.prefix in html
    assert "owner@globex.test" in html
    assert org_a.key.prefix not in html
    assert "acme.test" not in html and "Acme" not in html


def test_no_page_takes_the_organization_from_the_request(org_a: ConsoleOrg,
                                                         org_b: ConsoleOrg) -> None:
    # Naming A's id in the query string changes nothing: the organization comes from the session.
    html = org_b.client("owner").get("/settings/", {"org_id": str(org_a.org.id)}).content.decode()
    assert org_a.key.prefix not in html and org_b.key.prefix in html
