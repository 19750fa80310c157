"""Measure the token optimizer on routing/bench_corpus: `python -m routing.bench_tokens`.

Prints tokens before/after per case (o200k_base, i.e. gpt-4o counts) for lossless-only and for
lossy-allowed with a budget of BUDGET_FRACTION of the original size on long histories.
"""

from __future__ import annotations

import sys
import time

from routing.bench_corpus import corpus
from routing.token_optimizer import count_message_tokens, optimize

MODEL = "gpt-4o"
BUDGET_FRACTION = 0.5


def main() -> int:
    total_before = total_lossless = total_lossy = 0
    print(f"{'case':<42}{'before':>8}{'lossless':>10}{'budget':>8}{'lossy':>8}  techniques")
    elapsed = 0.0
    for name, messages in corpus().items():
        before = count_message_tokens(messages, model=MODEL)
        start = time.perf_counter()
        lossless = optimize(messages=messages, model=MODEL, quality_threshold=4.5)
        budget = int(before * BUDGET_FRACTION) if len(messages) > 4 else None
        lossy = optimize(messages=messages, model=MODEL, token_budget=budget, quality_threshold=3.0)
        elapsed += time.perf_counter() - start
        total_before += before
        total_lossless += lossless.tokens_after
        total_lossy += lossy.tokens_after
        print(
            f"{name:<42}{before:>8}{lossless.tokens_after:>10}{budget or '-':>8}"
            f"{lossy.tokens_after:>8}  {','.join(lossy.techniques) or '-'}"
            f" (risk {lossy.quality_risk})"
        )
    print(
        f"{'TOTAL':<42}{total_before:>8}{total_lossless:>10}{'':>8}{total_lossy:>8}\n"
        f"lossless reduction {1 - total_lossless / total_before:.1%}; "
        f"with history trimming {1 - total_lossy / total_before:.1%}; "
        f"{elapsed / (2 * len(corpus())) * 1000:.2f} ms per optimize() call"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
