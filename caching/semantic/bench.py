"""Embedding latency of the local embedder: `python -m caching.semantic.bench [--n 300]`.

Batch 1, a short prompt, after a warm-up; prints p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

PROMPT = "How do I reset my password on the customer portal after it expired?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    from caching.semantic.embedders import get_local_embedder

    embedder = get_local_embedder()
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
        f"p50_ms={statistics.median(times):.2f} p99_ms={times[int(0.99 * len(times)) - 1]:.2f}"
    )


if __name__ == "__main__":
    main()
