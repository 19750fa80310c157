"""Console personas: organization A with one user per role, and organization B (the outsider),
created through the same governance services the pages use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from governance import services
from governance.models import ApiKey, Membership, Organization

PASSWORD = "a-long-test-passphrase-42"
ROLES = ("viewer", "member", "admin", "owner")


@dataclass
class ConsoleOrg:
    org: Organization
    users: dict[str, Any] = field(default_factory=dict)  # role -> user
    key: ApiKey | None = None  # an active key of the organization
    target: Membership | None = None  # a member the owner may change or remove

    def client(self, role: str) -> Client:
        c = Client()
        c.force_login(self.users[role])
        return c


def make_console_org(name: str, domain: str) -> ConsoleOrg:
    result = services.signup(org_name=name, user_id=f"owner@{domain}", email=f"owner@{domain}",
                             ip=None, password=PASSWORD)
    org = result.organization
    out = ConsoleOrg(org=org, key=result.issued.key)
    out.users["owner"] = get_user_model().objects.get(username=f"owner@{domain}")
    for role in ("viewer", "member", "admin"):
        added = services.membership_add(organization=org, email=f"{role}@{domain}", role=role,
                                        actor="test")
        user = added.membership.user
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        out.users[role] = user
    out.target = services.membership_add(organization=org, email=f"target@{domain}",
                                         role="viewer", actor="test").membership
    return out


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Signup and login hash passwords; PBKDF2's production cost would dominate these tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_signup_throttle() -> None:
    # Signups from the test client's address count against the shared signup throttle.
    from django.core.cache import cache

    cache.delete("throttle_signup_127.0.0.1")


@pytest.fixture
def org_a(db: None) -> ConsoleOrg:
    return make_console_org("Acme", "acme.test")


@pytest.fixture
def org_b(db: None) -> ConsoleOrg:
    return make_console_org("Globex", "globex.test")
