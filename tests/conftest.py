"""Shared fixtures: real PostgreSQL (embedded pgserver with pgvector) and real Redis.

Redis comes from REDIS_URL (the test command points it at a live server, starting the bundled Valkey
if none runs). Personas follow Zulip/Saleor: an owner key, an admin key, a member key, an outsider org.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings

from governance.models import Organization
from governance.selectors import auth_cache
from governance.services import IssuedKey, api_key_issue, organization_create


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if settings.REDIS_URL:
        return
    skip = pytest.mark.skip(reason="REDIS_URL is not set (run the suite with ./asahi test)")
    for item in items:
        if "redis" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_auth_cache() -> Iterator[None]:
    auth_cache.clear()
    yield
    auth_cache.clear()


@pytest.fixture
def same_utc_day() -> None:
    """For tests whose assertions need one daily budget bucket: a run that would cross midnight UTC
    (within a minute of it) waits for the new day first."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if (midnight - now).total_seconds() < 60:
        time.sleep((midnight - now).total_seconds() + 1)


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]
    import redis

    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL not set")
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@dataclass
class Tenant:
    org: Organization
    admin: IssuedKey
    infer: IssuedKey
    analytics: IssuedKey

    def headers(self, which: str = "admin") -> dict[str, str]:
        key: IssuedKey = getattr(self, which)
        return {"HTTP_AUTHORIZATION": f"Bearer {key.raw}"}


def make_tenant(name: str) -> Tenant:
    org = organization_create(name=name, actor="test")
    return Tenant(
        org=org,
        admin=api_key_issue(organization=org, actor="test", scopes=["admin"]),
        infer=api_key_issue(organization=org, actor="test", scopes=["infer"]),
        analytics=api_key_issue(organization=org, actor="test", scopes=["analytics"]),
    )


@pytest.fixture
def tenant(db: None) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def outsider(db: None) -> Tenant:
    return make_tenant("globex")


@pytest.fixture
def catalogue(db: None) -> None:
    from inference.catalogue import seed_catalogue

    seed_catalogue()


os.environ.setdefault("ASAHI_TESTING", "1")

# Property tests explore new examples on a developer's machine; in CI (CI=true) they replay a
# fixed, derandomized set, so a run's verdict depends on the code, not on the draw.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
