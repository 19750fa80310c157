"""Routing writes: fold user feedback into per-model quality estimates.

`fold_pending_feedback` claims unfolded `inference.Feedback` rows with a compare-and-set
(`UPDATE ... SET folded = true WHERE folded = false ... RETURNING`), folds exactly the claimed rows
into `QualityEstimate` with `routing.feedback.fold_feedback` (the catalogue quality is the prior) and
commits both in one transaction. A retried or concurrent run therefore never counts a rating twice:
a row is either still unfolded (and its rating not in any estimate) or folded and counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from routing.feedback import FeedbackItem, fold_feedback
from routing.feedback import QualityEstimate as Estimate
from routing.types import DEFAULT_QUALITY_KEY

# One fold at a time (pg advisory lock): two folds of the same (model, task) would both read the
# same previous estimate and the second write would drop the first one's ratings.
_FOLD_LOCK_KEY = 0x5A5A_0F01
DEFAULT_BATCH = 5_000


@dataclass(frozen=True)
class FoldResult:
    folded: int  # feedback rows folded by this run
    estimates: dict[tuple[str, str], Estimate] = field(default_factory=dict)  # rows written


def _claim(batch_size: int) -> list[FeedbackItem]:
    from inference.models import Feedback

    table = connection.ops.quote_name(Feedback._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {table} SET folded = TRUE WHERE folded = FALSE AND id IN ("  # noqa: S608
            f"SELECT id FROM {table} WHERE folded = FALSE ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) RETURNING model, task_type, rating",
            [batch_size],
        )
        rows = cur.fetchall()
    return [FeedbackItem(model=model, task_type=task or DEFAULT_QUALITY_KEY, rating=int(rating))
            for model, task, rating in rows]


def _fold_batch(*, batch_size: int, priors: dict[str, dict[str, float]]) -> FoldResult:
    from routing.models import QualityEstimate

    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_FOLD_LOCK_KEY])
        items = _claim(batch_size)
        if not items:
            return FoldResult(folded=0)
        keys = {(i.model, i.task_type) for i in items}
        current = {
            (row.model, row.task_type): Estimate(mean=row.mean, count=row.count)
            for row in QualityEstimate.objects.filter(
                model__in={m for m, _ in keys}, task_type__in={t for _, t in keys})
            if (row.model, row.task_type) in keys
        }
        updated = fold_feedback(items=items, priors=priors, current=current)
        now = timezone.now()
        QualityEstimate.objects.bulk_create(
            [QualityEstimate(model=m, task_type=t, mean=min(5.0, max(0.0, e.mean)), count=e.count,
                             updated_at=now)
             for (m, t), e in sorted(updated.items())],
            update_conflicts=True, unique_fields=["model", "task_type"],
            update_fields=["mean", "count", "updated_at"],
        )
    return FoldResult(folded=len(items), estimates=updated)


def fold_pending_feedback(*, batch_size: int = DEFAULT_BATCH) -> FoldResult:
    """Fold every unfolded feedback row (in batches, one transaction each); returns the totals."""
    from inference.selectors import load_catalogue
    from routing.selectors import invalidate_quality_estimates

    # A fresh catalogue read: priors are what operators set now, not a 10 s old snapshot.
    priors = {name: dict(m.quality) for name, m in load_catalogue().models.items()}
    total = 0
    estimates: dict[tuple[str, str], Estimate] = {}
    while True:
        result = _fold_batch(batch_size=batch_size, priors=priors)
        total += result.folded
        estimates.update(result.estimates)
        if result.folded < batch_size:
            break
    if total:
        invalidate_quality_estimates()  # this process routes on the new values at once
    return FoldResult(folded=total, estimates=estimates)
