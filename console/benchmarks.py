"""The landing page's savings figures, read from docs/benchmarks.md so they are the measured ones
(a figure whose line changed shape is left out rather than shown stale)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Figure:
    value: str
    label: str
    source: str


# (pattern with one group for the value, label, which benchmark section it comes from)
_PATTERNS = (
    (r"\*\*input tokens saved ([\d.]+%)\*\*",
     "fewer input tokens on repeated document questions (tier-3 cache)", "Cache, tier 3 workload"),
    (r"\| asahi-autopilot \| \*\*[\d.]+\*\* \| \*\*([\d.]+%)\*\*",
     "of calls sent to the strong model to keep 50% of its quality gain (routing, held-out MMLU)",
     "Routing"),
    (r"history trimming to half\s+of the long debug history [\d,]+ tokens \(\u2212([\d.]+%)\)",
     "fewer tokens on a long chat history with the token optimizer", "Routing, token optimizer"),
    (r"\| 1 \| Asahi, exact hit \| ([\d.]+) \|",
     "ms p50 to answer a repeated request from the exact cache", "Gateway overhead"),
)


@functools.cache
def landing_figures() -> tuple[Figure, ...]:
    path = settings.BASE_DIR / "docs" / "benchmarks.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ()
    found = []
    for pattern, label, source in _PATTERNS:
        match = re.search(pattern, text)
        if match:
            found.append(Figure(value=match.group(1), label=label, source=source))
    return tuple(found)
