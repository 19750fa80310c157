"""Writes of the batching app: upload a file, create a batch (or a deferred /infer request), cancel.

Creation reserves the whole batch's worst case on the organization's budgets before anything is
stored (refused with the usual 429 when it does not fit); the batch and its items are written in
one transaction with the audit row, and the first step is scheduled after commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from asahi_project.crypto import encrypt
from asahi_project.errors import InvalidRequest, NotFound, PayloadTooLarge
from batching.choices import ACTIVE, BatchKind, BatchStatus, FilePurpose
from batching.jsonl import Line, check_body, parse_lines
from batching.models import Batch, BatchFile, BatchItem
from governance import enforcement
from governance.services import audit_log
from governance.types import AuthContext
from inference.selectors import get_catalogue

WINDOW = timedelta(hours=24)
# The reservation outlives the window by an hour, so expiry can still settle it.
RESERVATION_TTL_S = WINDOW.total_seconds() + 3600


def storage() -> Any:
    return storages["batches"]


def file_store(*, organization_id: Any, purpose: str, filename: str, data: bytes,
               name: str | None = None) -> BatchFile:
    """Save bytes through the storage backend and record them (call inside a transaction)."""
    f = BatchFile(organization_id=organization_id, purpose=purpose, filename=filename[:255],
                  bytes=len(data))
    target = name or f"{organization_id}/{f.id}.jsonl"
    if storage().exists(target):  # a re-run of an interrupted finalization rewrites its file
        storage().delete(target)
    f.storage_name = storage().save(target, ContentFile(data))
    f.save()
    return f


def file_read(f: BatchFile) -> bytes:
    with storage().open(f.storage_name, "rb") as fh:
        data: bytes = fh.read()
    return data


def file_upload(*, auth: AuthContext, purpose: str, filename: str, data: bytes) -> BatchFile:
    if purpose != FilePurpose.BATCH:
        raise InvalidRequest("purpose must be 'batch'", param="purpose")
    limit = settings.ASAHI_BATCH_MAX_FILE_BYTES
    if len(data) > limit:
        raise PayloadTooLarge(f"file is {len(data)} bytes; the limit is {limit}",
                              code="file_too_large", param="file")
    if not data.strip():
        raise InvalidRequest("file is empty", param="file")
    with transaction.atomic():
        return file_store(organization_id=auth.org_id, purpose=purpose, filename=filename,
                          data=data)


@dataclass
class _Prepared:
    lines: list[Line]
    worst_usd: Decimal


def _items(batch: Batch, lines: list[Line]) -> list[BatchItem]:
    return [BatchItem(batch=batch, custom_id=ln.custom_id, line=ln.line, body=ln.body,
                      state="failed" if ln.error_code else "pending",
                      rejected=bool(ln.error_code), error_code=ln.error_code,
                      error_message=ln.error_message, status_code=400 if ln.error_code else None,
                      reserved_usd=ln.worst_usd, budget_settled=bool(ln.error_code),
                      finished_at=timezone.now() if ln.error_code else None)
            for ln in lines]


def _write_batch(*, auth: AuthContext, batch: Batch, lines: list[Line], ticket: Any,
                 worst: Decimal, ip: str | None, action: str) -> Batch:
    from batching.tasks import advance

    batch.reservation_id = ticket.reservation_id or ""
    batch.reserved_usd = worst
    batch.expires_at = timezone.now() + WINDOW
    with transaction.atomic():
        batch.save(force_insert=True)
        BatchItem.objects.bulk_create(_items(batch, lines), batch_size=2000)
        audit_log(action=action, actor=auth.actor, organization=auth.org_id,
                  target_type="batch", target_id=batch.id, ip=ip,
                  details={"requests": len(lines),
                           "rejected": sum(1 for ln in lines if ln.error_code),
                           "reserved_usd": str(worst), "kind": batch.kind})
        transaction.on_commit(lambda: advance.delay(batch.id))
    return batch


async def _reserve_and_write(*, auth: AuthContext, batch: Batch, prepared: _Prepared,
                             ip: str | None, action: str) -> Batch:
    ticket = await enforcement.reserve_batch(auth=auth, worst_usd=prepared.worst_usd,
                                             ttl_s=RESERVATION_TTL_S)
    try:
        return await sync_to_async(_write_batch, thread_sensitive=False)(
            auth=auth, batch=batch, lines=prepared.lines, ticket=ticket,
            worst=prepared.worst_usd, ip=ip, action=action)
    except BaseException:
        await enforcement.release(ticket)
        raise


def _prepare_file(*, auth: AuthContext, input_file_id: str) -> tuple[BatchFile, _Prepared]:
    f = BatchFile.objects.filter(pk=input_file_id, organization_id=auth.org_id,
                                 purpose=FilePurpose.BATCH).first()
    if f is None:
        raise NotFound(f"no batch input file {input_file_id!r}", code="file_not_found",
                       param="input_file_id")
    lines = parse_lines(file_read(f), catalogue=get_catalogue(), auth=auth)
    if not lines:
        raise InvalidRequest("the input file has no requests", param="input_file_id")
    return f, _Prepared(lines=lines, worst_usd=sum((ln.worst_usd for ln in lines), Decimal(0)))


async def batch_create(*, auth: AuthContext, input_file_id: str, endpoint: str,
                       completion_window: str, metadata: dict[str, str] | None,
                       ip: str | None = None) -> Batch:
    from batching.jsonl import ENDPOINT

    if endpoint != ENDPOINT:
        raise InvalidRequest(f"endpoint must be {ENDPOINT} (chat completions are what Asahi "
                             "batches)", param="endpoint", code="unsupported_endpoint")
    if completion_window != "24h":
        raise InvalidRequest("completion_window must be '24h'", param="completion_window")
    f, prepared = await sync_to_async(_prepare_file, thread_sensitive=False)(
        auth=auth, input_file_id=input_file_id)
    batch = Batch(organization_id=auth.org_id, api_key_id=auth.key_id, kind=BatchKind.OPENAI,
                  input_file=f, metadata=metadata or {})
    return await _reserve_and_write(auth=auth, batch=batch, prepared=prepared, ip=ip,
                                    action="batch_created")


@dataclass
class DeferredJob:
    batch: Batch
    webhook_secret: str | None


async def deferred_create(*, auth: AuthContext, body: dict[str, Any], webhook_url: str | None,
                          ip: str | None = None) -> DeferredJob:
    """A deferrable /infer request: a batch of one chat request, answered later."""
    from batching.jsonl import _worst
    from batching.webhooks import check_webhook_url

    if webhook_url:
        await sync_to_async(check_webhook_url, thread_sensitive=False)(webhook_url)
    catalogue = await sync_to_async(get_catalogue, thread_sensitive=False)()
    problem = check_body(body, catalogue)
    if problem is not None:
        raise InvalidRequest(problem[1], code=problem[0])
    line = Line(line=1, custom_id="infer", body=body, worst_usd=_worst(body, catalogue, auth))
    secret = secrets.token_urlsafe(32) if webhook_url else None
    batch = Batch(organization_id=auth.org_id, api_key_id=auth.key_id, kind=BatchKind.DEFERRED,
                  endpoint="/infer", webhook_url=webhook_url or "",
                  webhook_secret_encrypted=encrypt(secret) if secret else "")
    batch = await _reserve_and_write(auth=auth, batch=batch,
                                     prepared=_Prepared(lines=[line], worst_usd=line.worst_usd),
                                     ip=ip, action="deferred_request_created")
    return DeferredJob(batch=batch, webhook_secret=secret)


def batch_cancel(*, auth: AuthContext, batch_id: str, ip: str | None = None) -> Batch:
    from batching.tasks import advance

    with transaction.atomic():
        batch = (Batch.objects.select_for_update()
                 .filter(pk=batch_id, organization_id=auth.org_id).first())
        if batch is None:
            raise NotFound(f"no batch {batch_id!r}", code="batch_not_found")
        if batch.status not in ACTIVE:
            raise InvalidRequest(f"batch is {batch.status}; only an active batch can be "
                                 "cancelled", code="batch_not_cancellable")
        if batch.status != BatchStatus.CANCELLING:
            batch.status = BatchStatus.CANCELLING
            batch.cancelling_at = timezone.now()
            batch.save(update_fields=["status", "cancelling_at"])
            audit_log(action="batch_cancelled", actor=auth.actor, organization=auth.org_id,
                      target_type="batch", target_id=batch.id, ip=ip, details={})
            transaction.on_commit(lambda: advance.delay(batch.id))
    return batch
