"""Fold user feedback into per-model, per-task quality estimates (pure).

Each feedback item is a 1-5 rating or a thumbs up/down (mapped to 4.5 / 1.5 on the 0-5 scale).
Estimates use Bayesian shrinkage toward the catalogue prior: the prior counts as PRIOR_WEIGHT
pseudo-ratings, so

    posterior = (PRIOR_WEIGHT * prior + sum(ratings)) / (PRIOR_WEIGHT + n)

A handful of ratings nudges the catalogue value; hundreds dominate it. Folding is incremental:
the returned QualityEstimate (mean, count) can be folded again with the next batch, and the result
equals folding both batches at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from routing.types import DEFAULT_QUALITY_KEY

PRIOR_WEIGHT = 20.0
THUMBS_UP_SCORE = 4.5
THUMBS_DOWN_SCORE = 1.5
_THUMBS = {"up": THUMBS_UP_SCORE, "down": THUMBS_DOWN_SCORE}


@dataclass(frozen=True)
class FeedbackItem:
    model: str
    task_type: str
    rating: int | None = None  # 1-5
    thumbs: str | None = None  # "up" | "down"

    def score(self) -> float:
        """The item on the 0-5 quality scale; raises ValueError if malformed."""
        if self.rating is not None:
            if not 1 <= self.rating <= 5:
                raise ValueError(f"rating must be 1-5, got {self.rating}")
            return float(self.rating)
        if self.thumbs is not None and self.thumbs.lower() in _THUMBS:
            return _THUMBS[self.thumbs.lower()]
        raise ValueError("feedback needs a rating (1-5) or thumbs ('up'/'down')")


@dataclass(frozen=True)
class QualityEstimate:
    mean: float  # posterior quality, 0-5
    count: int  # feedback items folded in so far


def fold_feedback(
    *,
    items: Iterable[FeedbackItem],
    priors: Mapping[str, Mapping[str, float]],
    current: Mapping[tuple[str, str], QualityEstimate] | None = None,
    prior_weight: float = PRIOR_WEIGHT,
) -> dict[tuple[str, str], QualityEstimate]:
    """Return updated estimates keyed by (model, task_type) for every pair seen in `items`.

    `priors[model][task]` is the catalogue quality (falling back to the model's "default");
    `current` holds estimates from earlier batches. Malformed items are skipped.
    """
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        try:
            score = item.score()
        except ValueError:
            continue
        key = (item.model, item.task_type)
        sums[key] = sums.get(key, 0.0) + score
        counts[key] = counts.get(key, 0) + 1

    out: dict[tuple[str, str], QualityEstimate] = {}
    for key, n_new in counts.items():
        model, task = key
        model_prior = priors.get(model, {})
        prior = float(model_prior.get(task, model_prior.get(DEFAULT_QUALITY_KEY, 3.0)))
        prev = (current or {}).get(key)
        n_old = prev.count if prev else 0
        # Previous posterior * (weight + n_old) recovers prior mass + old rating sum exactly.
        old_mass = prev.mean * (prior_weight + n_old) if prev else prior * prior_weight
        n = n_old + n_new
        mean = (old_mass + sums[key]) / (prior_weight + n)
        out[key] = QualityEstimate(mean=mean, count=n)
    return out
