"""Should the cached answer to ``candidate`` be served for ``query``? The Tier-2 decision.

One cosine threshold cannot tell "Celsius to Fahrenheit" from "Fahrenheit to Celsius" (cosine
0.98), so the procedure has three layers:

1. below ``low`` similarity: miss (the verifier essentially never accepts there);
2. hard guards (:func:`caching.semantic.features.guard_violation`) veto a hit at any similarity
   when the texts differ in negation, numbers, dates, units, names, programming language,
   direction ("A to B" vs "B to A") or kind of question ("why" vs "when");
3. at or above ``high``: hit; between ``low`` and ``high`` the trained verifier (boosted trees
   over the cosine and lexical overlap features) must give ``p >= min_verifier_probability``.

Thresholds per task type come from ``caching/artifacts/semantic_decision.json`` written by
``train_semantic_verifier``. :func:`decide` is pure apart from read-only, lazily loaded
artefacts, so it is thread-safe; it costs ~0.1-0.3 ms.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from caching.semantic.coverage import outside
from caching.semantic.features import (
    FEATURE_NAMES,
    analyze,
    features,
    guard_violation,
    normalize,
)
from caching.semantic.verifier import VERIFIER_PATH, TreeEnsemble

logger = logging.getLogger(__name__)

DECISION_CONFIG_PATH = Path(__file__).resolve().parents[1] / "artifacts" / "semantic_decision.json"
TASK_TYPES = (
    "code", "math", "reasoning", "summarization", "extraction", "translation", "creative", "chat",
)  # fmt: skip


@dataclass(frozen=True)
class Thresholds:
    """Similarity band edges; between them the verifier decides."""

    high: float
    low: float
    min_verifier_probability: float = 0.8

    def __post_init__(self) -> None:
        if not -1.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"need -1 <= low <= high <= 1, got low={self.low} high={self.high}")


@dataclass(frozen=True)
class Decision:
    """The verdict and a human-readable reason (logged and shown in analytics)."""

    hit: bool
    similarity: float
    reason: str
    verifier_probability: float | None = None


# Used when the trained config is missing (e.g. a checkout without artefacts) and for embedders
# the thresholds were not calibrated on (remote ones): strict.
UNCALIBRATED = Thresholds(high=0.97, low=0.90, min_verifier_probability=0.9)


def _load_thresholds(path: Path) -> dict[str, Thresholds]:
    table = {task: UNCALIBRATED for task in (*TASK_TYPES, "default")}
    if path.exists():
        doc = json.loads(path.read_text())
        for task, values in doc.get("thresholds", {}).items():
            table[task] = Thresholds(
                high=float(values["high"]),
                low=float(values["low"]),
                min_verifier_probability=float(values["min_verifier_probability"]),
            )
    return table


DEFAULT_THRESHOLDS: dict[str, Thresholds] = _load_thresholds(DECISION_CONFIG_PATH)

_verifier_lock = threading.Lock()
_verifier: TreeEnsemble | None = None
_verifier_loaded = False


def get_verifier() -> TreeEnsemble | None:
    """The shipped verifier (loaded once); None if the artefact is absent."""
    global _verifier, _verifier_loaded
    if not _verifier_loaded:
        with _verifier_lock:
            if not _verifier_loaded:
                loaded = TreeEnsemble.load(VERIFIER_PATH) if VERIFIER_PATH.exists() else None
                if loaded is not None and loaded.feature_names != FEATURE_NAMES:
                    # Trained on another feature vector: its splits would read the wrong
                    # columns. The band then misses until the verifier is retrained.
                    logger.warning("semantic_verifier_feature_mismatch")
                    loaded = None
                _verifier = loaded
                _verifier_loaded = True
    return _verifier


def thresholds_for(task_type: str) -> Thresholds:
    return DEFAULT_THRESHOLDS.get(task_type) or DEFAULT_THRESHOLDS["default"]


def _same_text(a: str, b: str) -> bool:
    # Case, spacing and punctuation aside, the same words in the same order. Texts with no
    # tokens at all (punctuation only) are compared whole: empty is not "the same".
    tokens_a, tokens_b = analyze(a).tokens, analyze(b).tokens
    if tokens_a or tokens_b:
        return tokens_a == tokens_b
    return normalize(a).casefold().split() == normalize(b).casefold().split()


def decide(
    *,
    query: str,
    candidate: str,
    similarity: float,
    task_type: str = "default",
    thresholds: Thresholds | None = None,
    languages: str = "en",
) -> Decision:
    """Decide whether ``candidate``'s cached answer may be served for ``query``.

    ``similarity`` is the cosine between their embeddings (from the same embedder that the
    thresholds were calibrated for: the local one unless configured otherwise). ``languages``
    is what that calibration covers (:mod:`caching.semantic.coverage`).
    """
    limits = thresholds or thresholds_for(task_type)
    sim = float(similarity)
    for text in (query, candidate):
        uncovered = outside(text, languages)
        if uncovered is not None:
            return Decision(False, sim, f"semantic tier off: {uncovered}")
    if _same_text(query, candidate):
        return Decision(True, sim, "same text (case and punctuation aside)")
    if sim < limits.low:
        return Decision(False, sim, f"miss: similarity {sim:.3f} < {limits.low:.3f}")
    guard = guard_violation(query, candidate)
    if guard is not None:
        return Decision(False, sim, f"guard rejected (similarity {sim:.3f}): {guard}")
    if sim >= limits.high:
        return Decision(True, sim, f"semantic hit: similarity {sim:.3f} >= {limits.high:.3f}")
    verifier = get_verifier()
    if verifier is None:
        return Decision(False, sim, f"miss: similarity {sim:.3f} < {limits.high:.3f}, no verifier")
    p = float(verifier.predict_proba(features(query, candidate, sim))[0])
    band = f"similarity {sim:.3f} in [{limits.low:.3f}, {limits.high:.3f})"
    if p >= limits.min_verifier_probability:
        return Decision(True, sim, f"verifier accepted (p={p:.2f}): {band}", p)
    return Decision(False, sim, f"verifier rejected (p={p:.2f}): {band}", p)
