"""Benchmark Asahi's added latency and throughput against the fake upstream at 0 ms latency.

    python manage.py bench_gateway [--requests 2000] [--concurrency 1,16,32] [--json out.json]

Starts the fake upstream and one uvicorn process of Asahi (subprocesses), then measures with an aiohttp
client: direct-to-upstream; the miss path with a signed-up organization's default policy (exact and
semantic cache on: every request a new prompt, so each one embeds, looks up, goes upstream and is
stored); the same miss path with the organization's cache off; and exact-cache hits. CPU ms per
request is the Asahi process's CPU time over the run divided by requests. The client shares the 2
cores with the server, so throughput numbers are a lower bound.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

PROMPT = "Benchmark: reply with a short sentence."
# Unique prompts for the miss path: random questions over a small vocabulary, so that each is new
# to the exact tier and few are near neighbours in the semantic tier (as in real traffic).
_WORDS = ["river", "mountain", "budget", "invoice", "garden", "battery", "protein", "museum", "contract", "planet", "violin", "harbor", "kernel", "tariff", "glacier", "pension", "router", "vaccine", "lantern", "reef", "quartz", "compiler", "orchard", "satellite", "mortgage", "canyon", "sonnet", "pipeline", "enzyme", "ledger", "volcano", "bakery", "theorem", "cargo", "monsoon", "alloy", "dialect", "turbine", "meadow", "sensor", "treaty", "galaxy"]
PATHS = {
    "miss": "Asahi, miss (default policy: semantic cache on)",
    "miss_cache_off": "Asahi, miss (cache off)",
    "exact_hit": "Asahi, exact hit",
}
_OPENINGS = ("Explain how", "Why does", "Summarize what", "Describe how", "What makes", "Compare")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _body(prompt: str) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "max_tokens": 64,
                       "messages": [{"role": "user", "content": prompt}]}).encode()


def unique_bodies(seed: int) -> Iterator[bytes]:
    """An endless stream of distinct prompts (deterministic per seed)."""
    rng = random.Random(seed)
    for i in itertools.count():
        words = " ".join(rng.sample(_WORDS, 4))
        yield _body(f"{rng.choice(_OPENINGS)} the {words} relate, case {seed}-{i}?")


async def _run(url: str, bodies: Iterator[bytes], headers: dict[str, str], n: int, conc: int
               ) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    errors = 0
    queue = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                body = next(bodies)
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                    for part in resp.headers.get("Server-Timing", "").split(","):
                        name, _, dur = part.strip().partition(";dur=")
                        if dur:
                            stages.setdefault(name, []).append(float(dur))
                latencies.append((time.perf_counter() - t0) * 1000)

        # warm-up
        for _ in range(min(50, n)):
            async with session.post(url, data=next(bodies), headers=headers) as resp:
                await resp.read()
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        elapsed = time.perf_counter() - t0
    return {"p50_ms": statistics.median(latencies), "p99_ms": _pct(latencies, 0.99),
            "p999_ms": _pct(latencies, 0.999),
            # Where the server spent a request's time, from its Server-Timing header.
            "stages_p50_ms": {k: statistics.median(v) for k, v in stages.items()},
            "rps": len(latencies) / elapsed, "errors": errors, "n": len(latencies)}


class Command(BaseCommand):
    help = "Measure Asahi's added latency, throughput and CPU per request against the fake upstream."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--requests", type=int, default=2000)
        parser.add_argument("--concurrency", default="1,16,32")
        parser.add_argument("--json", default="bench-results/gateway.json")

    def handle(self, *args: Any, **opts: Any) -> None:
        from governance.models import Organization
        from governance.services import api_key_issue, organization_create, policy_update
        from inference.catalogue import seed_catalogue

        seed_catalogue()
        name = f"bench-{int(time.time())}"
        # The path users take: a signed-up organization's default policy (semantic cache on).
        default_org = organization_create(name=name, actor="bench")
        keys = {"miss": api_key_issue(organization=default_org, actor="bench",
                                      scopes=["infer"]).raw}
        off_org = organization_create(name=name + "-cache-off", actor="bench")
        policy_update(organization=off_org, actor="bench", changes={"cache_enabled": False})
        keys["miss_cache_off"] = api_key_issue(organization=off_org, actor="bench",
                                               scopes=["infer"]).raw
        hit_org = organization_create(name=name + "-hits", actor="bench")
        keys["exact_hit"] = api_key_issue(organization=hit_org, actor="bench",
                                          scopes=["infer"]).raw
        up_port, web_port = _free_port(), _free_port()
        from asahi_project.embedded import database_url

        db_url = database_url(settings.DATABASES["default"])
        env = {**os.environ, "OPENAI_API_KEY": "bench", "DATABASE_URL": db_url,
               "OPENAI_BASE_URL": f"http://127.0.0.1:{up_port}/v1", "ASAHI_LOG_JSON": "false",
               "LOG_LEVEL": "WARNING"}
        if settings.REDIS_URL:
            env["REDIS_URL"] = settings.REDIS_URL
        Path(opts["json"]).parent.mkdir(parents=True, exist_ok=True)
        log = open(Path(opts["json"]).with_suffix(".server.log"), "wb")  # noqa: SIM115
        upstream = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "inference.fake_upstream", "--port", str(up_port),
             "--latency-ms", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        web = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "uvicorn", "asahi_project.asgi:application", "--port",
             str(web_port), "--log-level", "warning", "--no-access-log", "--no-proxy-headers"],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
        results: dict[str, Any] = {"requests": opts["requests"], "cpu_count": os.cpu_count()}
        try:
            self._wait(web_port)
            self._wait(up_port, path="/v1/models")
            direct = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
            seeds = itertools.count(int(time.time()))
            for conc in [int(c) for c in opts["concurrency"].split(",")]:
                n = opts["requests"] if conc > 1 else max(300, opts["requests"] // 4)
                d = asyncio.run(_run(f"http://127.0.0.1:{up_port}/v1/chat/completions",
                                     unique_bodies(next(seeds)), direct, n, conc))
                row: dict[str, Any] = {"direct": d}
                for label in PATHS:
                    headers = {"Content-Type": "application/json",
                               "Authorization": f"Bearer {keys[label]}"}
                    bodies = (itertools.repeat(_body(PROMPT)) if label == "exact_hit"
                              else unique_bodies(next(seeds)))
                    # Warm-up outside the CPU meter (the first miss loads the local embedder).
                    asyncio.run(_run(f"http://127.0.0.1:{web_port}/v1/chat/completions", bodies,
                                     headers, 50, 1))
                    cpu0 = _cpu_seconds(web.pid)
                    r = asyncio.run(_run(f"http://127.0.0.1:{web_port}/v1/chat/completions",
                                         bodies, headers, n, conc))
                    r["cpu_ms_per_request"] = (_cpu_seconds(web.pid) - cpu0) * 1000 / r["n"]
                    r["added_p50_ms"] = r["p50_ms"] - d["p50_ms"]
                    r["added_p99_ms"] = r["p99_ms"] - d["p99_ms"]
                    row[label] = r
                results[f"c{conc}"] = row
        finally:
            for proc in (web, upstream):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            Organization.objects.filter(name__startswith=name).update(is_active=False)
        self._print(results)
        out = Path(opts["json"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        self.stdout.write(f"\nJSON written to {out}")

    def _wait(self, port: int, path: str = "/health") -> None:
        import urllib.request

        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"port {port} did not answer")

    def _print(self, results: dict[str, Any]) -> None:
        self.stdout.write("| concurrency | path | p50 ms | p99 ms | p99.9 ms | added p50 ms "
                          "| added p99 ms | req/s | CPU ms/req | errors |")
        self.stdout.write("|---|---|---|---|---|---|---|---|---|---|")
        for key, row in results.items():
            if not (key.startswith("c") and key[1:].isdigit()):
                continue
            d = row["direct"]
            self.stdout.write(f"| {key[1:]} | direct to upstream | {d['p50_ms']:.2f} | "
                              f"{d['p99_ms']:.2f} | {d['p999_ms']:.2f} | - | - | {d['rps']:.0f} "
                              f"| - | {d['errors']} |")
            for label, title in PATHS.items():
                r = row[label]
                self.stdout.write(
                    f"| {key[1:]} | {title} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['p999_ms']:.2f} | {r['added_p50_ms']:.2f} | {r['added_p99_ms']:.2f} | "
                    f"{r['rps']:.0f} | {r['cpu_ms_per_request']:.2f} | {r['errors']} |")
        self.stdout.write("\nWhere a request spends its time on the server (p50 ms per stage, "
                          "from Server-Timing):\n")
        names = list(dict.fromkeys(n for key, row in results.items()
                                   if key.startswith("c") and key[1:].isdigit()
                                   for label in PATHS for n in row[label]["stages_p50_ms"]))
        self.stdout.write("| concurrency | path | " + " | ".join(names) + " |")
        self.stdout.write("|---|---|" + "---|" * len(names))
        for key, row in results.items():
            if not (key.startswith("c") and key[1:].isdigit()):
                continue
            for label, title in PATHS.items():
                st = row[label]["stages_p50_ms"]
                cells = " | ".join(f"{st[n]:.2f}" if n in st else "-" for n in names)
                self.stdout.write(f"| {key[1:]} | {title} | {cells} |")
