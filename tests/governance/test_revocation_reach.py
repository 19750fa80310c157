"""A key revoked in one process is refused by another within 1 s, not after its key-cache lifetime:
a real second process (a uvicorn server) that has the key cached, the revocation made here."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection

from governance.services import api_key_revoke
from tests.conftest import make_tenant
from tests.inference.conftest import _free_port
from tests.inference.test_budget_concurrency import _database_url, _start_server, _wait

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_revocation_reaches_another_process_within_a_second(transactional_db):
    tenant = make_tenant("revoke-reach")
    # A cache lifetime far beyond the 1 s the test allows: only the cross-process signal can do it.
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "ASAHI_KEY_CACHE_SECONDS": "60"}
    port = _free_port()
    proc = _start_server(port, env)
    try:
        _wait(port)
        url, headers = f"http://127.0.0.1:{port}/v1/models", {
            "Authorization": f"Bearer {tenant.infer.raw}"}
        assert httpx.get(url, headers=headers, timeout=5).status_code == 200  # now cached in B
        assert httpx.get(url, headers=headers, timeout=5).status_code == 200

        api_key_revoke(prefix=tenant.infer.key.prefix, actor="test")  # in this process (A)
        revoked_at = time.monotonic()
        refused = None
        while time.monotonic() - revoked_at < 3.0:
            r = httpx.get(url, headers=headers, timeout=5)
            if r.status_code == 401:
                refused = time.monotonic() - revoked_at
                assert r.json()["error"]["code"] == "revoked_api_key"
                break
            time.sleep(0.02)
        assert refused is not None and refused < 1.0, f"still accepted after {refused} s"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        with connection.cursor() as cur:  # the server's connections must not block teardown
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "datname = current_database() AND pid <> pg_backend_pid()")
