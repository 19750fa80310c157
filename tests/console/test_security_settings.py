"""Session cookies are HttpOnly always and Secure unless DEBUG, tests or an explicit switch say
otherwise (README, Configuration); memberships are editable in the admin and audited there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from governance.models import AuditEvent
from tests.console.conftest import ConsoleOrg

PRINT = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'asahi_project.settings'; "
         "from django.conf import settings as s; "
         "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_SECURE)")


def _settings_with(**env: str) -> str:
    base = {k: v for k, v in os.environ.items()
            if k not in ("ASAHI_TESTING", "DJANGO_DEBUG", "SESSION_COOKIE_SECURE")}
    # A DATABASE_URL keeps the settings import from starting the embedded PostgreSQL.
    run = subprocess.run([sys.executable, "-c", PRINT], cwd=settings.BASE_DIR, text=True,
                         env={**base, "DATABASE_URL": "postgres://u@127.0.0.1:1/x", **env},
                         capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@pytest.mark.parametrize(("env", "printed"), [
    ({}, "True True True"),
    ({"SESSION_COOKIE_SECURE": "false"}, "False True False"),
    ({"DJANGO_DEBUG": "true"}, "False True False"),
    ({"DJANGO_DEBUG": "true", "SESSION_COOKIE_SECURE": "true"}, "True True True"),
])
def test_session_cookie_flags(env: dict[str, str], printed: str) -> None:
    assert _settings_with(**env) == printed


@pytest.mark.django_db
def test_login_sets_an_httponly_session_cookie(org_a: ConsoleOrg) -> None:
    from tests.console.conftest import PASSWORD

    client = Client()
    client.post("/login/", {"username": "owner@acme.test", "password": PASSWORD})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True and cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_membership_role_changed_in_the_admin_is_audited(org_a: ConsoleOrg) -> None:
    staff = get_user_model().objects.create_superuser("root", password="pw-root-123456")
    client = Client()
    client.force_login(staff)
    member = org_a.target
    url = f"/admin/governance/membership/{member.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"organization": str(org_a.org.pk), "user": member.user_id,
                                 "role": "admin"})
    assert response.status_code == 302, response.content.decode()[:3000]
    member.refresh_from_db()
    assert member.role == "admin"
    event = AuditEvent.objects.filter(action="admin_change", target_type="membership").get()
    assert event.actor == "user:root" and event.organization_id == org_a.org.id
    assert event.target_id == str(member.pk)
