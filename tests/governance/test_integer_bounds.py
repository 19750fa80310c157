"""Integers past what their column holds are a 400 naming the field, not a database error (found
by the schemathesis run: `{"rpm_limit": 11020100592184}` on POST /governance/api-keys was a 500)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

TOO_BIG = 11_020_100_592_184


def _post(client: Client, path: str, body: dict, headers: dict):  # type: ignore[no-untyped-def]
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


@pytest.mark.parametrize("field", ["rpm_limit", "tpm_limit"])
def test_key_limits_past_a_postgres_integer_are_refused(client: Client, tenant, field: str) -> None:
    resp = _post(client, "/governance/api-keys", {field: TOO_BIG}, tenant.headers("admin"))
    assert resp.status_code == 400, resp.content
    assert resp.json()["error"]["param"] == field
    ok = _post(client, "/governance/api-keys", {field: 2_147_483_647}, tenant.headers("admin"))
    assert ok.status_code == 201, ok.content


@pytest.mark.parametrize("field", ["rpm_limit", "tpm_limit"])
def test_policy_limits_past_a_postgres_integer_are_refused(client: Client, tenant,
                                                           field: str) -> None:
    resp = _post(client, f"/governance/policies/{tenant.org.pk}", {field: TOO_BIG},
                 tenant.headers("admin"))
    assert resp.status_code == 400, resp.content
    assert resp.json()["error"]["param"] == field


@pytest.mark.redis
@pytest.mark.urls("tests.caching.urls")
def test_cache_invalidation_age_is_bounded(client: Client, tenant) -> None:
    resp = _post(client, "/cache/invalidate", {"scope": "all", "older_than_seconds": 10**15},
                 tenant.headers("admin"))
    assert resp.status_code == 400, resp.content
    assert resp.json()["error"]["param"] == "older_than_seconds"
