"""Several web processes: `uvicorn --workers 2` sharing Redis and PostgreSQL, metrics merged.

With PROMETHEUS_MULTIPROC_DIR set (as `./asahi up` and docker-compose do), each worker writes its
series to that directory and `/analytics/prometheus` merges them: whichever worker answers the
scrape reports every worker's requests.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_tenant
from tests.inference.conftest import _free_port
from tests.inference.test_budget_concurrency import _database_url, _wait

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BATCH = 20


def _requests_of(text: str, org: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "asahi_requests_total" and s.labels.get("org") == org)


def test_two_workers_serve_and_merge_their_metrics(upstream_env, transactional_db, catalogue,
                                                   tmp_path: Path):
    tenant = make_tenant("two-workers")
    prom = tmp_path / "prometheus"
    prom.mkdir()
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "PROMETHEUS_MULTIPROC_DIR": str(prom), "ASAHI_METRICS_SCRAPE_TOKEN": "scrape-me",
           "ASAHI_LEDGER_FLUSH_SECONDS": "0.2"}
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "uvicorn", "asahi_project.asgi:application", "--host",
             "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning"],
            env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait(port)
        base = f"http://127.0.0.1:{port}"

        async def fire(start: int) -> list[httpx.Response]:
            # One connection per request, so the kernel spreads them over both workers' accepts.
            async def one(i: int) -> httpx.Response:
                async with httpx.AsyncClient(timeout=30) as client:
                    return await client.post(
                        f"{base}/v1/chat/completions",
                        headers={"Authorization": f"Bearer {tenant.infer.raw}"},
                        json={"model": "gpt-4o-mini", "max_tokens": 16,
                              "messages": [{"role": "user", "content": f"Worker {i}"}]})
            return await asyncio.gather(*(one(i) for i in range(start, start + BATCH)))

        # Which worker accepts a connection is the kernel's choice: batches until both have
        # served (each writes its own counter file), within a bound.
        sent = 0
        writers: set[str] = set()
        while len(writers) < 2 and sent < 5 * BATCH:
            responses = asyncio.run(fire(sent))
            sent += BATCH
            assert [r.status_code for r in responses] == [200] * BATCH
            writers = {p.name.split("_")[-1] for p in prom.glob("counter_*.db")}
        assert len(writers) >= 2, sorted(p.name for p in prom.iterdir())
        # Every scrape (answered by either worker) reports all requests of both.
        org = str(tenant.org.pk)
        for _ in range(6):
            with httpx.Client(timeout=10) as client:  # a new connection: any worker may answer
                scrape = client.get(f"{base}/analytics/prometheus",
                                    headers={"Authorization": "Bearer scrape-me"})
            assert scrape.status_code == 200
            assert _requests_of(scrape.text, org) == sent
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid()")
