"""Micro-benchmark: latency of admit + settle against a live Redis.

    python -m governance.limits.bench [--url redis://127.0.0.1:6379/14] [--n 5000]

Each admit checks 4 rate limits (key/org rpm+tpm) and reserves on 4 budgets (org/key, day/month),
i.e. the full production pre-check; each settle releases the hold and records the actual cost.
Keys use a random org id and are deleted afterwards; nothing else in the db is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from .admission import Limits
from .breaker import CircuitBreaker
from .client import limits_client
from .types import BudgetLimit, RateLimit


def _summary(label: str, samples_us: list[float], wall_s: float, pairs: int) -> str:
    q = statistics.quantiles(samples_us, n=100)
    return (
        f"{label:<34} mean {statistics.fmean(samples_us):8.1f} us  p50 {q[49]:8.1f}  "
        f"p99 {q[98]:8.1f}  throughput {pairs / wall_s:8.0f}/s"
    )


async def _evalsha_stats(client) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    stats = await client.info("commandstats")
    row = stats.get("cmdstat_evalsha", {})
    return int(row.get("calls", 0)), int(row.get("usec", 0))


async def _run(url: str, n: int, concurrencies: list[int]) -> None:
    client = limits_client(url=url, max_connections=max(concurrencies) + 4)
    org = uuid.uuid4().hex
    big = 10**18
    budgets = [
        BudgetLimit("org", org, "day", big),
        BudgetLimit("org", org, "month", big),
        BudgetLimit("key", "1", "day", big),
        BudgetLimit("key", "1", "month", big),
    ]
    rates = [
        RateLimit("key", "1", "rpm", 10**9),
        RateLimit("key", "1", "tpm", 10**12),
        RateLimit("org", org, "rpm", 10**9),
        RateLimit("org", org, "tpm", 10**12),
    ]
    limits = Limits(client)

    async def pair() -> tuple[float, float]:
        t0 = time.perf_counter()
        adm = await limits.admit(
            org_id=org, cost_nanousd=2_000_000, tokens=1_500, budgets=budgets, rate_limits=rates
        )
        t1 = time.perf_counter()
        assert adm.ok and adm.reservation_id
        await limits.settle(
            reservation_id=adm.reservation_id, actual_nanousd=1_234_567, actual_tokens=1_200
        )
        return t1 - t0, time.perf_counter() - t1

    for _ in range(200):  # warm up connections and script cache
        await pair()

    t0 = time.perf_counter()
    pings = []
    for _ in range(2000):
        s = time.perf_counter()
        await client.ping()
        pings.append((time.perf_counter() - s) * 1e6)
    print(_summary("PING (baseline round trip)", pings, time.perf_counter() - t0, 2000))

    for conc in concurrencies:
        before = await _evalsha_stats(client)
        admit_us: list[float] = []
        settle_us: list[float] = []
        pair_us: list[float] = []
        per_worker = n // conc

        async def worker(
            per_worker=per_worker, admit_us=admit_us, settle_us=settle_us, pair_us=pair_us
        ) -> None:
            for _ in range(per_worker):
                a, s = await pair()
                admit_us.append(a * 1e6)
                settle_us.append(s * 1e6)
                pair_us.append((a + s) * 1e6)

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        wall = time.perf_counter() - start
        done = per_worker * conc
        print(f"-- concurrency {conc} ({done} admit+settle pairs, 1 process)")
        print(_summary("  admit (4 rate limits + 4 budgets)", admit_us, wall, done))
        print(_summary("  settle", settle_us, wall, done))
        print(_summary("  admit + settle", pair_us, wall, done))
        after = await _evalsha_stats(client)
        calls, usec = after[0] - before[0], after[1] - before[1]
        if calls > 0:
            print(
                f"  server-side script time: {usec / calls:.1f} us per EVALSHA "
                f"({calls} calls; shared server, other clients included)"
            )

    cb = CircuitBreaker(client, cache_s=0)
    cached = CircuitBreaker(client, cache_s=1.0)
    for label, breaker in (("breaker.allow (no cache)", cb), ("breaker.allow (1 s cache)", cached)):
        samples = []
        t0 = time.perf_counter()
        for _ in range(2000):
            s = time.perf_counter()
            await breaker.allow(f"bench/{org}")
            samples.append((time.perf_counter() - s) * 1e6)
        print(_summary(label, samples, time.perf_counter() - t0, 2000))

    async for key in client.scan_iter(match=f"asahi:*{org}*", count=1000):
        await client.delete(key)
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--n", type=int, default=5000, help="admit+settle pairs per concurrency level"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    asyncio.run(_run(args.url, args.n, args.concurrency))


if __name__ == "__main__":
    main()
