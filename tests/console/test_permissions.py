"""Who may open which console page and take which action: a table of page × role × status.

Every console view and action has a row. ``least`` is the least role that may use it (None: any
visitor; "user": any logged-in user, organization or not); below it a logged-in user gets 403, an anonymous visitor is sent to the login page, and
at or above it the row's ``ok`` status is answered. Part B's pages (dashboard, playground, cache,
analytics) add their rows to ``ROWS`` in the same form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from tests.console.conftest import ROLES, ConsoleOrg

ROLE_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    path: Callable[[ConsoleOrg], str]
    least: str | None  # None: public; "user": logged in
    ok: int
    data: Callable[[ConsoleOrg], dict[str, Any]] | None = None
    logged_in_ok: int | None = None  # a public page that answers members differently (login)


def _static(path: str) -> Callable[[ConsoleOrg], str]:
    return lambda org: path


ROWS: list[Row] = [
    Row("landing", "get", _static("/"), None, 200),
    Row("signup page", "get", _static("/signup/"), None, 200),
    Row("login page", "get", _static("/login/"), None, 200, logged_in_ok=302),
    Row("password reset page", "get", _static("/password/reset/"), None, 200),
    Row("password change page", "get", _static("/password/change/"), "user", 200),
    Row("password changed page", "get", _static("/password/change/done/"), "user", 200),
    Row("password reset sent page", "get", _static("/password/reset/sent/"), None, 200),
    # A made-up token: the page says the link no longer works (and changes nothing).
    Row("password reset link", "get", _static("/password/reset/MQ/set-password/"), None, 200),
    Row("password reset done page", "get", _static("/password/reset/complete/"), None, 200),
    Row("logout", "post", _static("/logout/"), None, 302),
    Row("api docs", "get", _static("/api-docs/"), "viewer", 200),
    Row("settings", "get", _static("/settings/"), "viewer", 200),
    Row("issue key", "post", _static("/settings/keys/"), "admin", 200,
        data=lambda o: {"name": "ci", "scopes": ["infer"], "expires_in_days": "30"}),
    Row("revoke key", "post", lambda o: f"/settings/keys/{o.key.prefix}/revoke/", "admin", 302),
    Row("rotate key", "post", lambda o: f"/settings/keys/{o.key.prefix}/rotate/", "admin", 200),
    Row("edit policy", "post", _static("/settings/policy/"), "admin", 302,
        data=lambda o: {"daily_budget_usd": "5", "cache_enabled": "on",
                        "cache_ttl_seconds": "3600", "cache_max_temperature": "0.5"}),
    Row("edit alerts", "post", _static("/settings/alerts/"), "admin", 302,
        data=lambda o: {"alert_emails": "ops@acme.test"}),
    Row("add member", "post", _static("/settings/members/"), "owner", 302,
        data=lambda o: {"email": "new@acme.test", "role": "member"}),
    Row("change role", "post", lambda o: f"/settings/members/{o.target.pk}/role/", "owner", 302,
        data=lambda o: {"role": "member"}),
    Row("remove member", "post", lambda o: f"/settings/members/{o.target.pk}/remove/", "owner",
        302),
    # Part B: dashboard, playground, cache, analytics.
    Row("dashboard", "get", _static("/dashboard/"), "viewer", 200),
    Row("dashboard live fragment", "get", _static("/dashboard/live/"), "viewer", 200),
    Row("playground page", "get", _static("/playground/"), "viewer", 200),
    # An empty form: past the role check it is a validation error (a real run is in
    # test_playground.py); below it 403 before the form is read.
    Row("playground run", "post", _static("/playground/run"), "member", 400),
    Row("cache page", "get", _static("/cache/"), "viewer", 200),
    # Without `confirm` the answer is the confirmation page; nothing is deleted.
    Row("cache invalidate", "post", _static("/cache/invalidate/"), "admin", 200,
        data=lambda o: {"target": "all"}),
    Row("analytics page", "get", _static("/analytics/"), "viewer", 200),
    Row("ledger csv", "get", _static("/analytics/ledger.csv"), "viewer", 200),
]


def _request(client: Client, row: Row, org: ConsoleOrg) -> Any:
    path = row.path(org)
    if row.method == "get":
        return client.get(path)
    return client.post(path, row.data(org) if row.data else {})


@pytest.mark.django_db
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
@pytest.mark.parametrize("role", [None, *ROLES], ids=lambda r: r or "anonymous")
def test_page_role_status(row: Row, role: str | None, org_a: ConsoleOrg) -> None:
    client = org_a.client(role) if role else Client()
    response = _request(client, row, org_a)
    if row.least is None:
        expected = row.logged_in_ok if role and row.logged_in_ok else row.ok
        assert response.status_code == expected
    elif role is None:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
    elif row.least != "user" and ROLE_RANK[role] < ROLE_RANK[row.least]:
        assert response.status_code == 403
    else:
        assert response.status_code == row.ok, response.content.decode()[:2000]


@pytest.mark.django_db
@pytest.mark.parametrize("row", [r for r in ROWS if r.least in ROLES], ids=lambda r: r.name)
def test_a_user_without_an_organization_is_refused(row: Row, org_a: ConsoleOrg) -> None:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user("loner", password="x"))
    assert _request(client, row, org_a).status_code == 403


@pytest.mark.django_db
def test_every_console_url_has_a_row(org_a: ConsoleOrg) -> None:
    from django.urls import resolve

    from console.urls import urlpatterns

    covered = {resolve(row.path(org_a).split("?")[0]).url_name for row in ROWS}
    assert {p.name for p in urlpatterns} - covered == set()
