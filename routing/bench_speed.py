"""Speed of the routing hot path, measured (not asserted): `python -m routing.bench_speed`.

Prints the median and best per-call time (ms) of: task detection on a long prompt, difficulty
prediction, a full `route()` over 20 candidates, the token optimizer on a long chat (lossless and
with history trimming), and rendering an enrichment context. Pure code only: no database, no Redis.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from routing.difficulty import default_model
from routing.enricher import render
from routing.router import route
from routing.selectors import ContextEntry
from routing.task_detection import detect_task_type
from routing.token_optimizer import Message, optimize
from routing.types import Candidate, RoutingRequest

HARD = ("Prove that for every prime p > 3, p^2 - 1 is divisible by 24, then generalise the argument "
        "to p^2 - q^2 for primes p, q > 3 and explain each step of the modular reasoning. ")


def _candidates(n: int) -> list[Candidate]:
    return [Candidate(name=f"m{i}", provider="openai", input_price_per_m=0.1 * (i + 1),
                      output_price_per_m=0.4 * (i + 1), cached_input_price_per_m=0.05 * (i + 1),
                      context_window=128_000, quality={"default": 2 + i * 0.15},
                      typical_latency_ms=300 + 50 * i) for i in range(n)]


def _chat(turns: int) -> list[Message]:
    msgs = [Message("system", "You are a helpful assistant.   \n\n\n\nBe brief.")]
    for i in range(turns):
        msgs.append(Message("user", f"Question {i}: how do I configure the cache?   \n\n\n" * 3))
        msgs.append(Message("assistant", f"Answer {i}: set the TTL in the policy.\n\n\n\n" * 3))
    msgs.append(Message("user", "And the semantic threshold?"))
    return msgs


def measure(fn: Callable[[], object], *, rounds: int, per_round: int) -> tuple[float, float]:
    fn()  # warm caches (predictor artifact, tokenizer ranks)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        times.append((time.perf_counter() - start) / per_round * 1000)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=50)
    args = parser.parse_args(argv)

    long_prompt = "Please explain why this function is slow and how to fix it. " * 200
    predictor = default_model()
    cands = _candidates(20)
    req = RoutingRequest(prompt=(HARD * 12)[:1500], quality_threshold=3.5, input_tokens=400)
    chat = _chat(40)
    tokens = sum(len(m.content) for m in chat) // 4
    entries = [ContextEntry(instructions="Answer in British English.",
                            glossary={f"T{i}": f"term {i}" for i in range(30)},
                            preferences={"tone": "brief"})]
    cases: list[tuple[str, Callable[[], object]]] = [
        ("detect_task_type (12k chars)", lambda: detect_task_type(long_prompt)),
        ("difficulty predict (1.5k chars)", lambda: predictor.predict(req.prompt)),
        ("route(), 20 candidates", lambda: route(request=req, candidates=cands)),
        (f"optimize lossless ({len(chat)} msgs)",
         lambda: optimize(messages=chat, model="gpt-4o", quality_threshold=4.5)),
        (f"optimize + trimming to {tokens // 2} tokens",
         lambda: optimize(messages=chat, model="gpt-4o", token_budget=tokens // 2,
                          quality_threshold=3.0)),
        ("enrichment render (30 terms)", lambda: render(entries)),
    ]
    print(f"{'operation':<42}{'median ms':>10}{'best ms':>10}")
    for name, fn in cases:
        median, best = measure(fn, rounds=args.rounds, per_round=args.per_round)
        print(f"{name:<42}{median:>10.3f}{best:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
