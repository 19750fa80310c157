"""`kill -9` of a uvicorn process of Asahi mid-request, with a second process serving beside it.

What the crash may lose is the requests in flight: every other request was answered, and its
ledger row was written (a hard crash can lose only the rows of the last flush interval). The budget
reservation of a request in flight is not settled by anyone; it is held until its TTL
(ASAHI_RESERVATION_TTL_SECONDS) and then released by the next admission of the organization,
which the surviving process then serves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from governance.services import policy_update
from inference.models import InferenceEvent
from tests.conftest import make_tenant
from tests.inference.conftest import _free_port
from tests.inference.test_budget_concurrency import _database_url, _wait
from tests.inference.test_redis_faults import _start_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TTL_S = 4.0
FLUSH_S = 0.2


def _chat(prompt: str, max_tokens: int = 200) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "max_tokens": max_tokens, "cache": "no-store",
            "messages": [{"role": "user", "content": prompt}]}


def test_kill_9_mid_request_loses_only_what_was_in_flight(same_utc_day, upstream_env,
                                                          transactional_db, catalogue,
                                                          tmp_path: Path):
    budgeted, busy = make_tenant("crash-budget"), make_tenant("crash-load")
    # gpt-4o-mini, 200 output tokens at most: a worst case of about $0.000123 per request; the
    # budget holds one reservation, not two.
    policy_update(organization=budgeted.org, actor="test",
                  changes={"daily_budget_usd": Decimal("0.00018")})
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "ASAHI_LEDGER_FLUSH_SECONDS": str(FLUSH_S), "ASAHI_UPSTREAM_RETRIES": "0",
           "ASAHI_RESERVATION_TTL_SECONDS": str(TTL_S),
           "ASAHI_LEDGER_SPOOL_DIR": str(tmp_path / "spool")}
    victim_port, survivor_port = _free_port(), _free_port()
    victim = _start_server(victim_port, env, tmp_path / "victim.log")
    survivor = _start_server(survivor_port, env, tmp_path / "survivor.log")
    answered: list[tuple[float, str]] = []  # (answered at, request id) on the victim
    lost: list[str] = []
    slow_answer: list[str] = []
    marks: dict[str, float] = {}
    try:
        _wait(victim_port)
        _wait(survivor_port)
        victim_url = f"http://127.0.0.1:{victim_port}/v1/chat/completions"
        survivor_url = f"http://127.0.0.1:{survivor_port}/v1/chat/completions"

        async def reserved(tenant) -> int:  # type: ignore[no-untyped-def]
            from asahi_project.redis_client import get_async_redis
            from governance.enforcement import budgets_for
            from governance.limits import Limits
            from governance.selectors import authenticate_key

            auth = await asyncio.to_thread(authenticate_key, tenant.infer.raw)
            states = await Limits(get_async_redis()).get_spend(org_id=str(auth.org_id),
                                                               budgets=budgets_for(auth))
            return sum(s.reserved_nanousd for s in states)

        async def post(client: httpx.AsyncClient, url: str, key: str, body: dict[str, object],
                       ) -> httpx.Response:
            return await client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})

        async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
            stop = asyncio.Event()
            async with httpx.AsyncClient(timeout=15) as client:
                async def load(n: int) -> None:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        try:
                            r = await post(client, victim_url, busy.infer.raw,
                                           _chat(f"Crash load {n}-{i}", 16))
                        except httpx.HTTPError:
                            lost.append(f"load {n}-{i}")
                            return  # the server is gone
                        assert r.status_code == 200, r.text
                        answered.append((time.monotonic(), r.headers["x-request-id"]))

                async def slow() -> None:
                    # Admitted (its worst case reserved), then waits on an upstream that does
                    # not answer for 5 s: in flight when the process dies.
                    try:
                        r = await post(client, victim_url, budgeted.infer.raw,
                                       _chat("Crash slow [[fail:timeout]]"))
                        slow_answer.append(f"{r.status_code} {r.text[:300]}")
                    except httpx.HTTPError:
                        lost.append("slow")

                tasks = [asyncio.create_task(load(n)) for n in range(3)]
                slow_task = asyncio.create_task(slow())
                marks["sent"] = time.monotonic()
                await asyncio.sleep(0.5)
                # Kill once the slow request holds its reservation (a loaded machine may take a
                # while to admit it); read through the limits' own spend query.
                while await reserved(budgeted) == 0:
                    assert time.monotonic() - marks["sent"] < 30, ("never admitted", slow_answer)
                    await asyncio.sleep(0.05)
                marks["admitted"] = time.monotonic()
                # And some answers older than a flush interval, whose ledger rows must survive.
                while len(answered) < 10 or time.monotonic() - marks["sent"] < 1.5:
                    assert time.monotonic() - marks["sent"] < 30, len(answered)
                    await asyncio.sleep(0.05)
                marks["kill"] = time.monotonic()
                victim.send_signal(signal.SIGKILL)
                await asyncio.to_thread(victim.wait, 5)
                stop.set()
                await asyncio.gather(*tasks, slow_task)
                # The dead process's reservation still holds the budget...
                held = await post(client, survivor_url, budgeted.infer.raw, _chat("After 0"))
                # ...until its TTL; then the survivor serves the organization again.
                tries = []
                while time.monotonic() - marks["kill"] < TTL_S + 6:
                    r = await post(client, survivor_url, budgeted.infer.raw,
                                   _chat(f"After {len(tries) + 1}"))
                    tries.append(r)
                    if r.status_code == 200:
                        marks["served"] = time.monotonic()
                        break
                    await asyncio.sleep(0.25)
                return tries, held

        tries, held = asyncio.run(scenario())
        assert held.status_code == 429, held.text
        assert held.json()["error"]["code"] == "budget_exceeded"
        assert held.json()["error"]["details"]["reserved_usd"] > 0
        assert tries and tries[-1].status_code == 200, [r.text for r in tries[-2:]]
        assert all(r.json()["error"]["code"] == "budget_exceeded" for r in tries[:-1])
        # Released on expiry: not before the TTL (admitted before it was seen), nor long after.
        assert marks["sent"] + TTL_S <= marks["served"] <= marks["admitted"] + TTL_S + 3.0
        # Lost: the slow request and at most one request per load client (those in flight).
        assert "slow" in lost and len(lost) <= 4, lost
        assert len(answered) > 10, len(answered)
        time.sleep(3 * FLUSH_S)  # the survivor's ledger flush
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    # Every answer of the dead process older than its last flush interval is in the ledger.
    before = {rid for at, rid in answered if at < marks["kill"] - FLUSH_S - 0.3}
    written = set(InferenceEvent.objects.filter(organization=busy.org)
                  .values_list("request_id", flat=True))
    assert before and before <= written, len(before - written)
    # Nothing was charged for the request that died: the only cost is the survivor's answer.
    charged = InferenceEvent.objects.filter(organization=budgeted.org, status="ok")
    assert charged.count() == 1 and charged.get().cost_usd > 0
    with connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid()")
