"""Budgets hold under concurrency across processes: two uvicorn servers, one Redis, 50 requests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from governance.services import policy_update
from inference.models import InferenceEvent
from tests.conftest import make_tenant
from tests.inference.conftest import _free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _database_url() -> str:
    from asahi_project.embedded import database_url

    return database_url(settings.DATABASES["default"])


def _start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "asahi_project.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        # Not a pipe: nobody reads it, and a server that logs a lot would block on a full one.
        env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(port: int) -> None:
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def test_fifty_concurrent_requests_never_overspend(same_utc_day, upstream_env, transactional_db,
                                                   catalogue):
    tenant = make_tenant("budget-race")
    # gpt-4o-mini, max_tokens 200, a short prompt: worst case ~= (20*0.15 + 200*0.60)/1e6 = $0.000123.
    budget = Decimal("0.0012")  # about 10 worst-case reservations
    policy_update(organization=tenant.org, actor="test", changes={"daily_budget_usd": budget})
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "ASAHI_LEDGER_FLUSH_SECONDS": "0.1", "ASAHI_UPSTREAM_RETRIES": "0"}
    ports = [_free_port(), _free_port()]
    procs = [_start_server(p, env) for p in ports]
    try:
        for p in ports:
            _wait(p)

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                reqs = [client.post(
                    f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {tenant.infer.raw}"},
                    json={"model": "gpt-4o-mini", "max_tokens": 200, "cache": "no-store",
                          "messages": [{"role": "user",
                                        "content": f"Request {i} [[len:150]] [[chunk_ms:1]]"}]})
                        for i in range(50)]
                return await asyncio.gather(*reqs)

        responses = asyncio.run(fire())
        codes = [r.status_code for r in responses]
        ok = codes.count(200)
        denied = [r for r in responses if r.status_code == 429]
        assert ok + len(denied) == 50, codes
        assert 5 <= ok <= 25, codes
        assert all(r.json()["error"]["code"] == "budget_exceeded" for r in denied)
        assert all("retry-after" in r.headers for r in denied)
        time.sleep(1.0)  # both servers flush their ledger buffers every 0.1 s
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
    spent = InferenceEvent.objects.filter(organization=tenant.org, status="ok").aggregate(
        s=Sum("cost_usd"))["s"]
    assert InferenceEvent.objects.filter(organization=tenant.org, status="ok").count() == ok
    assert Decimal(0) < spent <= budget
    assert InferenceEvent.objects.filter(organization=tenant.org,
                                         status="rate_limited").count() == len(denied)
    with connection.cursor() as cur:  # servers' connections must not block the test DB teardown
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid()")
