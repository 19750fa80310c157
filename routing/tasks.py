"""Celery tasks of the routing app (scheduled in asahi_project/celery.py)."""

from __future__ import annotations

from celery import shared_task

from routing.services import fold_pending_feedback


@shared_task(name="routing.fold_feedback")
def fold_feedback_task() -> dict[str, int]:
    """Fold unfolded user feedback into the router's per-model quality estimates."""
    result = fold_pending_feedback()
    return {"folded": result.folded, "estimates": len(result.estimates)}
