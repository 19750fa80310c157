"""A throwaway stack for the benchmark and soak commands: the fake upstream, N uvicorn workers and
a Celery worker.

Shared by `bench_workers` and `soak` so both launch Asahi as `./asahi up` does (uvicorn
--workers N, PROMETHEUS_MULTIPROC_DIR, --no-proxy-headers, a worker on the celery and batch
queues) and measure the same processes. Without the worker, a semantic scope past the exact-scan
limit never gets its HNSW index (a worker builds it), and every lookup scans the whole scope.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str = "/health", tries: int = 600) -> None:
    for _ in range(tries):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not answer")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return sorted(out)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    workers: int
    env_extra: dict[str, str] = field(default_factory=dict)
    upstream_latency_ms: float = 0.0
    web_port: int = 0
    up_port: int = 0
    web: subprocess.Popen[bytes] | None = None
    upstream: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    tmp: Path | None = None

    def start(self, log: Path) -> None:
        from asahi_project.embedded import database_url

        self.up_port, self.web_port = free_port(), free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="asahi-stack-"))
        (self.tmp / "prometheus").mkdir()
        env = {**os.environ, "OPENAI_API_KEY": "bench",
               "DATABASE_URL": database_url(settings.DATABASES["default"]),
               "OPENAI_BASE_URL": f"http://127.0.0.1:{self.up_port}/v1",
               # All three providers on the fake upstream (as `./asahi up` in demo mode): the
               # router may pick any model of the catalogue.
               "ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.up_port}",
               "COHERE_API_KEY": "bench", "CO_API_URL": f"http://127.0.0.1:{self.up_port}",
               "ASAHI_LOG_JSON": "false", "LOG_LEVEL": "WARNING",
               "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"),
               "ASAHI_LEDGER_SPOOL_DIR": str(self.tmp / "spool"), **self.env_extra}
        if settings.REDIS_URL:
            env.setdefault("REDIS_URL", settings.REDIS_URL)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.upstream = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "inference.fake_upstream", "--port", str(self.up_port),
                 "--latency-ms", str(self.upstream_latency_ms)], env=env,
                stdout=subprocess.DEVNULL, stderr=out)
            self.web = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "uvicorn", "asahi_project.asgi:application", "--port",
                 str(self.web_port), "--workers", str(self.workers), "--log-level", "warning",
                 "--no-access-log", "--no-proxy-headers"],
                env=env, stdout=subprocess.DEVNULL, stderr=out)
            self.worker = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "celery", "-A", "asahi_project", "worker",
                 "--loglevel", "WARNING", "--concurrency", "1", "-Q", "celery,batch",
                 "-n", f"stack{self.web_port}@%h"],
                env=env, stdout=subprocess.DEVNULL, stderr=out)
        wait_http(self.up_port, "/v1/models")
        wait_http(self.web_port)
        if self.workers > 1:  # uvicorn's supervisor answers nothing itself: wait for every worker
            for _ in range(600):
                if len(children(self.web.pid)) >= self.workers:
                    break
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def server_pids(self) -> list[int]:
        """The uvicorn processes that serve: the workers, or the one process without --workers."""
        assert self.web is not None
        if self.workers > 1:
            # uvicorn's supervisor spawns the workers through multiprocessing: skip its helper.
            return [p for p in children(self.web.pid) if _is_worker(p)]
        return [self.web.pid]

    def stop(self) -> None:
        for proc in (self.web, self.upstream, self.worker):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _is_worker(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmd


def org_with_key(name: str, **policy: Any) -> tuple[Any, str]:
    from governance.services import api_key_issue, organization_create, policy_update

    org = organization_create(name=name, actor="bench")
    if policy:
        policy_update(organization=org, actor="bench", changes=policy)
    return org, api_key_issue(organization=org, actor="bench", scopes=["infer"]).raw
