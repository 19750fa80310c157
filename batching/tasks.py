"""Celery tasks of the batching app: ids in, one service called (queue ``batch``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="batching.advance", time_limit=3600, soft_time_limit=3500)
def advance(batch_id: str) -> str:
    from batching.engine import advance as run

    return run(batch_id=batch_id)


@shared_task(name="batching.poll")
def poll() -> int:
    """Beat: advance every open batch (polls providers, resumes work a dead worker left)."""
    from batching.engine import open_batch_ids

    ids = open_batch_ids()
    for batch_id in ids:
        advance.delay(batch_id)
    return len(ids)


@shared_task(name="batching.deliver_webhook", bind=True, max_retries=6, time_limit=120)
def deliver_webhook(self, batch_id: str) -> bool:  # type: ignore[no-untyped-def]
    from batching.delivery import WebhookFailed, webhook_deliver

    try:
        return webhook_deliver(batch_id=batch_id)
    except WebhookFailed as exc:
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 5, 600)) from exc
