"""Delivering a finished deferred request to its webhook, signed, at most once successfully."""

from __future__ import annotations

import httpx
import orjson
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from asahi_project.crypto import decrypt
from asahi_project.errors import InvalidRequest
from batching.models import Batch
from batching.selectors import deferred_json
from batching.webhooks import SIGNATURE_HEADER, check_webhook_url, sign


class WebhookFailed(Exception):
    """The receiver did not answer 2xx (retried with backoff)."""


def webhook_deliver(*, batch_id: str) -> bool:
    b = Batch.objects.filter(pk=batch_id).first()
    if b is None or not b.webhook_url or b.webhook_delivered_at is not None:
        return False
    try:
        check_webhook_url(b.webhook_url)  # again at delivery: DNS may have changed since
    except InvalidRequest:
        return False
    body = orjson.dumps(deferred_json(b))
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: sign(decrypt(b.webhook_secret_encrypted), body),
               "User-Agent": "Asahi-Webhook/1"}
    Batch.objects.filter(pk=b.pk).update(webhook_attempts=F("webhook_attempts") + 1)
    try:
        r = httpx.post(b.webhook_url, content=body, headers=headers,
                       timeout=settings.ASAHI_WEBHOOK_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise WebhookFailed(str(exc)) from exc
    if not 200 <= r.status_code < 300:
        raise WebhookFailed(f"HTTP {r.status_code}")
    Batch.objects.filter(pk=b.pk).update(webhook_delivered_at=timezone.now())
    return True
