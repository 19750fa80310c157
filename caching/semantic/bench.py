"""Embedding latency of the local embedder: `python -m caching.semantic.bench [--n 300]`.

Batch 1, a short prompt, after a warm-up; prints p50/p99 in milliseconds and the host's load
average before and after (a shared 2-core host under load measures the queue, not the model).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

PROMPT = "How do I reset my password on the customer portal after it expired?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    from caching.semantic.embedders import get_local_embedder

    embedder = get_local_embedder()
    load_before = os.getloadavg()[0]
    for _ in range(20):
        embedder.embed([PROMPT])
    times = []
    for i in range(args.n):
        t0 = time.perf_counter()
        embedder.embed([f"{PROMPT} {i}"])
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(
        f"embedder={embedder.name}:{embedder.version} runtime={embedder.runtime} n={args.n} "
        f"p50_ms={statistics.median(times):.2f} p99_ms={times[int(0.99 * len(times)) - 1]:.2f} "
        f"load1={load_before:.1f}->{os.getloadavg()[0]:.1f} cores={os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
