"""Soak: Asahi under steady mixed load for a given time, watching for leaks.

    python manage.py soak --minutes 30 [--concurrency 16] [--workers 1] [--sample-seconds 60]

Starts a stack (stack.Stack: the fake upstream and uvicorn --workers N) and drives it with
`--concurrency` clients, each cycling through: exact-cache hits (a few repeated prompts), misses
with the default policy (new prompts: the semantic tier embeds and looks up, misses and stores),
streamed completions (new and repeated prompts) and /infer. Every `--sample-seconds` it records, per
server process, RSS and open file descriptors, plus the server's PostgreSQL connections (from
pg_stat_activity, by client pid) and its Redis connections (from CLIENT LIST, by client port),
requests and errors. At the end: a table over time and a summary per process with RSS growth
measured from the first sample after the warm-up (the embedder and caches loaded), and the verdict
against the goal (RSS growth <= 5 % per process, no error, flat FDs and connections).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from inference.management.commands.bench_gateway import unique_bodies
from inference.management.stack import Stack, children, open_fds, org_with_key, rss_kb

_REPEATS = [f"Soak repeat {i}: what is the capital of country number {i}?" for i in range(12)]


def _chat(prompt: str, *, stream: bool = False) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "max_tokens": 48, "stream": stream,
                       "messages": [{"role": "user", "content": prompt}]}).encode()


def _pg_connections() -> int:
    """Client backends of this database other than this command's own: the stack's (a
    Unix-socket backend does not know its client's pid; nothing else should use this data
    directory's database while the soak runs)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return int(cur.fetchone()[0])


def _local_ports(pids: set[int]) -> set[int]:
    """Local TCP ports of the sockets the given processes hold (from /proc/net/tcp*)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _redis_connections(pids: set[int]) -> int:
    """Redis clients whose address is a local port held by one of `pids`."""
    from asahi_project.redis_client import get_sync_redis

    ports = _local_ports(pids)
    clients = get_sync_redis().client_list()
    return sum(1 for c in clients if int(str(c.get("addr", ":0")).rsplit(":", 1)[1]) in ports)


class Command(BaseCommand):
    help = "Run Asahi under mixed load for a while; report RSS, FDs, connections and errors."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--minutes", type=float, default=30.0)
        parser.add_argument("--concurrency", type=int, default=16)
        parser.add_argument("--workers", type=int, default=1)
        parser.add_argument("--sample-seconds", type=float, default=60.0)
        parser.add_argument("--warmup-seconds", type=float, default=60.0)
        parser.add_argument("--json", default="bench-results/soak.json")
        parser.add_argument("--report", default="",
                            help="print the tables of a finished run's JSON file; run nothing")

    def handle(self, *args: Any, **opts: Any) -> None:
        from governance.models import Organization
        from inference.catalogue import seed_catalogue

        if opts["report"]:
            self._report(json.loads(Path(opts["report"]).read_text()), opts, save=False)
            return
        seed_catalogue()
        name = f"soak-{int(time.time())}"
        _, key = org_with_key(name)
        stack = Stack(workers=opts["workers"])
        stack.start(Path(opts["json"]).with_suffix(".server.log"))
        try:
            result = asyncio.run(self._soak(stack, key, opts))
        finally:
            stack.stop()
            Organization.objects.filter(name__startswith=name).update(is_active=False)
        self._report(result, opts)

    async def _soak(self, stack: Stack, key: str, opts: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        counts: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        misses = unique_bodies(int(time.time()))
        rng = random.Random(7)
        stop = asyncio.Event()
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        deadline = started + opts["minutes"] * 60

        async def one(session: aiohttp.ClientSession, kind: str) -> None:
            url = f"{stack.url}/v1/chat/completions"
            if kind == "hit":
                body = _chat(rng.choice(_REPEATS))
            elif kind == "miss":
                body = next(misses)
            elif kind in ("stream_new", "stream_repeat"):
                prompt = (rng.choice(_REPEATS) if kind == "stream_repeat"
                          else f"Soak stream {time.monotonic_ns()} about {rng.random()}")
                body = _chat(prompt, stream=True)
            else:
                url = f"{stack.url}/infer"
                body = json.dumps({"prompt": f"Soak infer {rng.randrange(10**9)}: "
                                             "summarize the water cycle"}).encode()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    data = await resp.read()
                    if resp.status != 200 or (kind.startswith("stream")
                                              and b"[DONE]" not in data):
                        errors[f"{kind}:{resp.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[f"{kind}:{type(exc).__name__}"] += 1
            counts[kind] += 1

        mix = ["hit", "hit", "hit", "miss", "miss", "stream_new", "stream_repeat", "infer"]

        async def client(n: int) -> None:
            timeout = aiohttp.ClientTimeout(total=60)
            kinds = itertools.cycle(mix[n % len(mix):] + mix[:n % len(mix)])
            while not stop.is_set():
                # A new connection every 100 requests: the kernel spreads connections over the
                # workers, and connection churn is part of what a leak check must see.
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    for kind in itertools.islice(kinds, 100):
                        if stop.is_set():
                            return
                        await one(session, kind)

        async def sampler() -> None:
            while True:
                pids = stack.server_pids()
                everything = set(pids) | {stack.web.pid} if stack.web else set(pids)
                sample = {
                    "t_s": round(time.monotonic() - started, 1),
                    "requests": sum(counts.values()), "errors": sum(errors.values()),
                    "processes": {str(p): {"rss_kb": rss_kb(p), "fds": open_fds(p)}
                                  for p in pids},
                    "pg_connections": await asyncio.to_thread(_pg_connections),
                    "redis_connections": await asyncio.to_thread(_redis_connections,
                                                                 everything | _kids(everything)),
                }
                samples.append(sample)
                self.stderr.write(json.dumps(sample))
                if time.monotonic() >= deadline:
                    stop.set()
                    return
                await asyncio.sleep(min(opts["sample_seconds"],
                                        max(0.0, deadline - time.monotonic())))

        await asyncio.gather(sampler(), *(client(n) for n in range(opts["concurrency"])))
        return {"samples": samples, "counts": dict(counts), "errors": dict(errors),
                "minutes": opts["minutes"], "concurrency": opts["concurrency"],
                "workers": opts["workers"], "cpu_count": os.cpu_count()}

    def _report(self, result: dict[str, Any], opts: dict[str, Any], *, save: bool = True) -> None:
        samples = result["samples"]
        warm = next((s for s in samples if s["t_s"] >= opts["warmup_seconds"]), samples[0])
        last = samples[-1]
        out = self.stdout.write
        total = sum(result["counts"].values())
        out(f"soak: {result['minutes']} min, c={result['concurrency']}, "
            f"{result['workers']} worker(s), {result['cpu_count']} cores; {total} requests "
            f"({', '.join(f'{k} {v}' for k, v in sorted(result['counts'].items()))}); "
            f"errors: {sum(result['errors'].values())} {result['errors'] or ''}\n")
        pids = list(last["processes"])
        out("| t (s) | requests | errors | " + " | ".join(
            f"pid {p} RSS MB | pid {p} FDs" for p in pids) + " | PG conns | Redis conns |")
        out("|---|---|---|" + "---|---|" * len(pids) + "---|---|")
        for s in samples:
            cells = " | ".join(
                f"{s['processes'][p]['rss_kb'] / 1024:.1f} | {s['processes'][p]['fds']}"
                if p in s["processes"] else "- | -" for p in pids)
            out(f"| {s['t_s']:.0f} | {s['requests']} | {s['errors']} | {cells} | "
                f"{s['pg_connections']} | {s['redis_connections']} |")
        out(f"\nPer process, RSS growth from t={warm['t_s']:.0f} s (after the warm-up) to the end:")
        # A leak keeps growing; warming up (allocator arenas, the embedder's buffers) levels off:
        # the growth over the second half of the run tells them apart.
        half = samples[len(samples) // 2]
        out(f"| pid | RSS first MB | RSS after warm-up MB | RSS at t={half['t_s']:.0f} s MB | "
            "RSS end MB | growth after warm-up | growth over the second half | FDs after "
            "warm-up | FDs end |")
        out("|---|---|---|---|---|---|---|---|---|")
        verdict = sum(result["errors"].values()) == 0
        fd_medians: dict[str, tuple[float, float]] = {}
        for p in pids:
            first = samples[0]["processes"].get(p, {}).get("rss_kb", 0)
            base = warm["processes"].get(p, last["processes"][p])
            mid = half["processes"].get(p, base)
            end = last["processes"][p]
            growth = 100.0 * (end["rss_kb"] - base["rss_kb"]) / base["rss_kb"]
            late = 100.0 * (end["rss_kb"] - mid["rss_kb"]) / mid["rss_kb"]
            # FDs move with the clients' connections in flight (they reconnect every 100
            # requests), so one sample against another is noise: a leak is a rise of the median
            # from the first third after the warm-up to the last third.
            fds = [s["processes"][p]["fds"] for s in samples
                   if s["t_s"] >= warm["t_s"] and p in s["processes"]]
            third = max(1, len(fds) // 3)
            fd_early, fd_late = statistics.median(fds[:third]), statistics.median(fds[-third:])
            fd_medians[p] = (fd_early, fd_late)
            verdict = verdict and growth <= 5.0 and fd_late <= fd_early + 5
            out(f"| {p} | {first / 1024:.1f} | {base['rss_kb'] / 1024:.1f} | "
                f"{mid['rss_kb'] / 1024:.1f} | {end['rss_kb'] / 1024:.1f} | {growth:+.2f} % | "
                f"{late:+.2f} % | {base['fds']} | {end['fds']} |")
        out("\nFDs, median of the first and of the last third after the warm-up: " + "; ".join(
            f"{p}: {a:g} -> {b:g}" for p, (a, b) in fd_medians.items()))
        pg = [s["pg_connections"] for s in samples if s["t_s"] >= warm["t_s"]]
        rc = [s["redis_connections"] for s in samples if s["t_s"] >= warm["t_s"]]
        out(f"\nPostgreSQL connections after warm-up: min {min(pg)}, max {max(pg)}; "
            f"Redis connections: min {min(rc)}, max {max(rc)}")
        out(f"Goal (RSS growth <= 5 % per process, no error, FD median flat): "
            f"{'met' if verdict else 'NOT met'}")
        if save:
            path = Path(opts["json"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2))


def _kids(pids: set[int]) -> set[int]:
    out: set[int] = set()
    for p in pids:
        try:
            out |= set(children(p))
        except OSError:
            continue
    return out
