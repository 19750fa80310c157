"""Throughput of Asahi at 1, 2, 4 ... uvicorn workers against the fake upstream at 0 ms latency.

    python manage.py bench_workers [--workers 1,2,4] [--requests 2000] [--concurrency 16]

For each worker count: a fresh stack (stack.Stack: uvicorn --workers N as `./asahi up` runs it),
then req/s and latency of exact-cache hits and of misses with the default policy (every prompt new:
embed, lookup, upstream, store), measured with bench_gateway's aiohttp client. The client runs on
the same machine, so on few cores the numbers are a lower bound, and more workers than cores only
add contention.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from inference.management.commands.bench_gateway import PROMPT, _body, _run, unique_bodies
from inference.management.stack import Stack, org_with_key


class Command(BaseCommand):
    help = "Measure req/s of Asahi at several uvicorn worker counts."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--workers", default="1,2,4")
        parser.add_argument("--requests", type=int, default=2000)
        parser.add_argument("--concurrency", type=int, default=16)
        parser.add_argument("--json", default="bench-results/workers.json")

    def handle(self, *args: Any, **opts: Any) -> None:
        from governance.models import Organization
        from inference.catalogue import seed_catalogue

        seed_catalogue()
        name = f"bench-workers-{int(time.time())}"
        _, miss_key = org_with_key(name)
        _, hit_key = org_with_key(name + "-hits")
        n, conc = opts["requests"], opts["concurrency"]
        seeds = itertools.count(int(time.time()))
        results: dict[str, Any] = {"cpu_count": os.cpu_count(), "requests": n,
                                   "concurrency": conc, "rows": []}
        try:
            for workers in [int(w) for w in opts["workers"].split(",")]:
                stack = Stack(workers=workers)
                stack.start(Path(opts["json"]).with_suffix(".server.log"))
                try:
                    url = f"{stack.url}/v1/chat/completions"
                    for label, key in (("exact_hit", hit_key), ("miss", miss_key)):
                        headers = {"Content-Type": "application/json",
                                   "Authorization": f"Bearer {key}"}
                        bodies = (itertools.repeat(_body(PROMPT)) if label == "exact_hit"
                                  else unique_bodies(next(seeds)))
                        # Warm-up: every worker loads its embedder on its first miss.
                        asyncio.run(_run(url, bodies, headers, 40 * workers, conc))
                        r = asyncio.run(_run(url, bodies, headers, n, conc))
                        row = {"workers": workers, "path": label, "rps": r["rps"],
                               "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                               "errors": r["errors"], "n": r["n"]}
                        results["rows"].append(row)
                        self.stderr.write(json.dumps(row))
                finally:
                    stack.stop()
        finally:
            Organization.objects.filter(name__startswith=name).update(is_active=False)
        self.stdout.write(f"cores: {os.cpu_count()}, c={conc}, {n} requests per row, fake "
                          "upstream at 0 ms; client on the same machine\n")
        self.stdout.write("| workers | path | req/s | p50 ms | p99 ms | errors |")
        self.stdout.write("|---|---|---|---|---|---|")
        for row in results["rows"]:
            self.stdout.write(f"| {row['workers']} | {row['path']} | {row['rps']:.0f} | "
                              f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']} |")
        out = Path(opts["json"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
