"""Real Celery workers (subprocesses, embedded beat) on the test database, real Redis, the fake
upstream's batch APIs; the live Asahi server from tests/inference/conftest.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.fakeup import fake_upstream  # noqa: F401  (fixture)
from tests.inference.conftest import (  # noqa: F401  (fixtures)
    asahi_url,
    client_for,
    gateway,
    live_tenant,
    upstream_env,
)

# The queue the web process sends batch tasks to (CELERY_TASK_ROUTES). Any other worker consuming
# it on the test Redis database would take these tasks and look for the batches in its own DB.
QUEUE = "batch"


def _database_url() -> str:
    from asahi_project.embedded import database_url

    return database_url(settings.DATABASES["default"])


class Workers:
    """Starts Celery workers (solo pool, embedded beat polling every 0.3 s) in their own process
    groups; kills them with SIGKILL like an OOM-killer or a pulled plug would."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.url = url  # the live Asahi server
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        full = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
                "ASAHI_BATCH_POLL_SECONDS": "0.3", "ASAHI_WEBHOOK_ALLOW_PRIVATE": "1",
                "ASAHI_LOG_JSON": "0", "LOG_LEVEL": "WARNING", **env}
        log = open(self.tmp / f"worker{n}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "celery", "-A", "asahi_project", "worker", "-B", "--pool",
             "solo", "-Q", QUEUE, "--loglevel", "WARNING", "-n", f"batchtest{n}@%h",
             "-s", str(self.tmp / f"beat{n}")],
            env=full, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.tmp.glob("worker*.log")))


@pytest.fixture
def workers(gateway, upstream_env, redis_client, tmp_path) -> Iterator[Workers]:  # noqa: F811
    redis_client.delete(QUEUE)  # messages left by earlier tests name batches that are gone
    w = Workers(tmp_path, gateway)
    try:
        yield w
    finally:
        w.stop_all()
        redis_client.delete(QUEUE)
        upstream_env.config.batch_delay_s = 0.0  # the fake upstream is shared by the session


def batch_line(cid: str, model: str, prompt: str, **extra: object) -> str:
    """One JSONL line of a chat batch; ``extra`` goes into the body (max_tokens 50 unless set)."""
    import json

    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": model, "max_tokens": 50,
                                "messages": [{"role": "user", "content": prompt}], **extra}})


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, what: str = "",
             workers: Workers | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{workers.logs() if workers else ''}")
