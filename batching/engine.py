"""The batch state machine, driven by Celery: `advance(batch_id)` does every step that is due.

Items move pending → queued → (submitted →) done | failed. Each move happens in a transaction
that holds the moved items' row locks and, for an answered item, inserts its ledger row in the same
transaction; a worker killed at any point rolls back at most the chunk it was on, and the next
`advance` (beat runs one for every open batch every ASAHI_BATCH_POLL_SECONDS) redoes it. So no
item is lost and none is charged twice. One `advance` per batch runs at a time (a PostgreSQL
advisory lock, released by the server if the worker dies).

Steps: route (the pipeline's cache tiers and router) → group the misses per provider+model →
submit each group to its provider's batch API → poll → write back (ledger at the batch price,
exact cache) → settle each finished item's share of the budget reservation → finalize (output
and error files, release what is left of the reservation). Items of
providers without a batch API are run by the worker instead, a few at a time, rate-limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from asahi_project.errors import AsahiError
from batching.choices import (
    ACTIVE,
    OPEN_ITEM_STATES,
    BatchKind,
    BatchStatus,
    FilePurpose,
    ItemState,
    JobState,
)
from batching.models import Batch, BatchItem, ProviderJob
from batching.providers import BATCH_KINDS, WAIT, batch_api
from governance import enforcement
from governance.selectors import auth_context_for_key
from governance.types import AuthContext
from inference import pipeline, pricing
from inference.ledger import LedgerRow, ledger
from inference.providers.openai_format import request_from_openai, result_to_openai
from inference.providers.types import ChatRequest, ChatResult
from inference.selectors import Catalogue, get_catalogue
from inference.types import ModelInfo
from inference.validation import cache_mode

logger = logging.getLogger("asahi.batching")

# Provider batch APIs bill half the synchronous price (OpenAI Batch, Anthropic Message Batches).
BATCH_PRICE_FACTOR = Decimal("0.5")
# A provider's clock may run behind ours: look this much further back for a lost submission.
FIND_SKEW = timedelta(minutes=10)
_ITEM_FIELDS = ["state", "model", "provider_kind", "plan", "response", "status_code", "error_code",
                "error_message", "cache_tier", "cost_usd", "sync_cost_usd", "techniques",
                "request_id", "finished_at"]


_passes: dict[str, int] = {}


_JSON_FIELDS = {"plan", "response", "techniques"}


def _json_param(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()  # None stays SQL NULL


def _save_items(items: list[BatchItem]) -> None:
    """Write the moved items' fields: one UPDATE per row, sent as one pipelined executemany
    (Django's bulk_update builds a CASE per field and row: 13 s for 500 items, this about 0.1 s)."""
    if not items:
        return
    sets = ", ".join(f"{f} = %s::jsonb" if f in _JSON_FIELDS else f"{f} = %s"
                     for f in _ITEM_FIELDS)
    # Only the model's own table and field names go into the text; values are parameters.
    sql = f"UPDATE {BatchItem._meta.db_table} SET {sets} WHERE id = %s"  # noqa: S608
    params = []
    for item in items:
        row = [_json_param(getattr(item, f)) if f in _JSON_FIELDS else getattr(item, f)
               for f in _ITEM_FIELDS]
        params.append([*row, item.pk])
    with connection.cursor() as cur:
        cur.executemany(sql, params)


def _pause(point: str) -> None:
    """Fault injection for the kill test: with ASAHI_BATCH_PAUSE_AT=<point>[:<n>] the worker
    writes ASAHI_BATCH_PAUSE_FILE and stops there (inside the step's transaction, after the step's
    side effects) the n-th time it gets there, until it is killed."""
    want, _, nth = os.environ.get("ASAHI_BATCH_PAUSE_AT", "").partition(":")
    if want != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] != int(nth or 1):
        return
    marker = os.environ.get("ASAHI_BATCH_PAUSE_FILE")
    if marker:
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
    time.sleep(3600)


@contextlib.contextmanager
def _advisory(batch_id: str) -> Iterator[bool]:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [f"batch:{batch_id}"])
        got = bool(cur.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"batch:{batch_id}"])


def _chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# --- The call an item makes through the pipeline -------------------------------------------------

def _call(auth: AuthContext, item: BatchItem, rows: list[LedgerRow]) -> pipeline.GatewayCall:
    from inference.services import ASAHI_FIELDS, routing_options  # the /v1 view's own mapping

    body = item.body or {}
    chat = request_from_openai(body)
    chat.stream = False
    for name in ASAHI_FIELDS:
        chat.extra.pop(name, None)
    if body.get("fallbacks"):
        chat.extra["fallbacks"] = body["fallbacks"]
    return pipeline.GatewayCall(
        auth=auth, request_id=item.request_id or f"{item.batch_id}-{item.pk}", endpoint="batch",
        chat=chat, routing=routing_options(body), cache_mode=cache_mode(body, ""),
        ledger_sink=rows.append)


def _plan_of(item: BatchItem, model: ModelInfo) -> pipeline.Plan:
    p = item.plan or {}
    return pipeline.Plan(chain=[model], task_type=p.get("task_type", ""),
                         routing_mode=p.get("routing_mode", ""), reason=p.get("reason", ""),
                         max_output_tokens=int(p.get("max_output_tokens") or 0),
                         input_tokens_est=int(p.get("input_tokens_est") or 0),
                         techniques=list(p.get("techniques") or []))


def _fail(item: BatchItem, *, code: str, message: str, status: int = 400) -> None:
    item.state, item.error_code, item.error_message = ItemState.FAILED, code, message[:4000]
    item.status_code, item.finished_at = status, timezone.now()


def _answered(item: BatchItem, call: pipeline.GatewayCall, *, result: ChatResult, model: ModelInfo,
              catalogue: Catalogue, factor: Decimal, technique: str) -> None:
    """An upstream answer: the item is done and its ledger row recorded through the call's sink
    (the caller inserts both in one transaction)."""
    full = pricing.cost_of(model, result.usage)
    cost = (full * factor).quantize(pricing.NANO)
    p = _plan_of(item, model)
    p.reason = f"{p.reason}; {technique}" if p.reason else technique
    pipeline.record(call, model=model, p=p, status="ok", http_status=200, usage=result.usage,
                    cost=cost, baseline=pipeline.baseline_for(call, catalogue, result.usage),
                    response_text=result.content)
    item.state, item.status_code, item.finished_at = ItemState.DONE, 200, timezone.now()
    item.response = result_to_openai(result, model=model.name)
    item.response["id"] = item.response["id"] or f"chatcmpl-{item.batch_id[-12:]}-{item.pk}"
    item.cost_usd, item.sync_cost_usd = cost, full
    item.techniques = [*p.techniques, technique]


@dataclass
class _Store:
    """Exact-cache writes to do after the chunk commits (idempotent, best effort)."""

    entries: list[tuple[pipeline.GatewayCall, str, ChatResult, ModelInfo, Decimal]] = field(
        default_factory=list)

    def add(self, item: BatchItem, call: pipeline.GatewayCall, result: ChatResult,
            model: ModelInfo) -> None:
        p = item.plan or {}
        if p.get("may_write") and p.get("digest"):
            self.entries.append((call, p["digest"], result, model, item.sync_cost_usd))

    def run(self) -> None:
        if not self.entries:
            return

        async def go() -> None:
            for call, digest, result, model, cost in self.entries:
                try:
                    await pipeline.store_deferred(call, digest=digest, result=result, model=model,
                                                  cost=cost)
                except Exception:  # a cache write never fails an answered item
                    logger.warning("batch_cache_store_failed", exc_info=True)

        asyncio.run(go())


# --- Step 1: route through the pipeline (cache tiers, router) ------------------------------------

async def _route_items(auth: AuthContext, items: list[BatchItem], rows: list[LedgerRow]) -> None:
    sem = asyncio.Semaphore(16)  # concurrent lookups let the embedder coalesce them

    async def one(item: BatchItem) -> None:
        async with sem:
            call = _call(auth, item, rows)
            try:
                out = await pipeline.prepare_deferred(call)
            except AsahiError as err:
                _fail(item, code=err.code, message=err.message, status=err.status)
                return
        if isinstance(out, pipeline.GatewayResponse):  # a cache hit: answered now, free
            item.state, item.status_code, item.finished_at = ItemState.DONE, 200, timezone.now()
            item.model, item.cache_tier, item.cost_usd = out.model.name, out.cache_tier, Decimal(0)
            item.response = result_to_openai(out.result, model=out.model.name)
            item.techniques = out.techniques
            return
        p, model = out.plan, out.plan.chain[0]
        item.state, item.model, item.provider_kind = ItemState.QUEUED, model.name, model.provider_kind
        item.plan = {"task_type": p.task_type, "routing_mode": p.routing_mode, "reason": p.reason,
                     "max_output_tokens": p.max_output_tokens,
                     "input_tokens_est": p.input_tokens_est, "techniques": p.techniques,
                     "digest": out.digest, "may_write": out.may_write}

    await asyncio.gather(*(one(i) for i in items))


def _route(batch: Batch, auth: AuthContext) -> None:
    while True:
        with transaction.atomic():
            items = list(BatchItem.objects.select_for_update(skip_locked=True)
                         .filter(batch=batch, state=ItemState.PENDING)
                         .order_by("line")[:settings.ASAHI_BATCH_CHUNK])
            if not items:
                return
            for item in items:
                item.request_id = f"{batch.id}-{item.pk}"
            rows: list[LedgerRow] = []
            asyncio.run(_route_items(auth, items, rows))
            _save_items(items)
            ledger.write_now(rows)
            _pause("route")


# --- Step 2: group misses per provider+model into provider jobs ----------------------------------

def _group(batch: Batch) -> None:
    with transaction.atomic():
        items = list(BatchItem.objects.select_for_update(skip_locked=True)
                     .filter(batch=batch, state=ItemState.QUEUED, job__isnull=True,
                             provider_kind__in=BATCH_KINDS).values_list("pk", "provider_kind",
                                                                        "model"))
        groups: dict[tuple[str, str], list[int]] = {}
        for pk, kind, model in items:
            groups.setdefault((kind, model), []).append(pk)
        for (kind, model), pks in groups.items():
            job = ProviderJob.objects.create(batch=batch, provider_kind=kind, model=model)
            BatchItem.objects.filter(pk__in=pks).update(job=job)


def _upstream_request(item: BatchItem, model: ModelInfo) -> ChatRequest:
    """What the pipeline would send upstream for this item (routing's model and output cap)."""
    from inference.services import ASAHI_FIELDS

    call = request_from_openai(item.body or {})
    for name in ASAHI_FIELDS:
        call.extra.pop(name, None)
    cap = int((item.plan or {}).get("max_output_tokens") or 0) or pipeline.DEFAULT_MAX_OUTPUT
    return ChatRequest(model=model.upstream_name, messages=call.messages,
                       temperature=call.temperature, top_p=call.top_p, max_tokens=cap,
                       stop=call.stop, tools=call.tools, tool_choice=call.tool_choice,
                       response_format=call.response_format, user=call.user, stream=False,
                       extra={k: v for k, v in call.extra.items() if k != "fallbacks"})


def _fail_job(job: ProviderJob, message: str) -> None:
    now = timezone.now()
    job.items.filter(state__in=OPEN_ITEM_STATES).update(
        state=ItemState.FAILED, error_code="upstream_batch_failed", error_message=message[:4000],
        status_code=502, finished_at=now)
    job.state, job.error, job.finished_at = JobState.FAILED, message[:4000], now
    job.save(update_fields=["state", "error", "finished_at"])


def _submit(batch: Batch, catalogue: Catalogue) -> None:
    for job_id in list(ProviderJob.objects.filter(batch=batch, state=JobState.CREATED)
                       .values_list("pk", flat=True)):
        # Counted before the attempt, in its own transaction, so a retry knows to look first.
        ProviderJob.objects.filter(pk=job_id).update(
            attempts=F("attempts") + 1,
            first_attempt_at=Coalesce("first_attempt_at", Now()))
        with transaction.atomic():
            job = (ProviderJob.objects.select_for_update(skip_locked=True)
                   .filter(pk=job_id, state=JobState.CREATED).first())
            if job is None:
                continue
            model = catalogue.get(job.model)
            if model is None:
                _fail_job(job, f"model {job.model} is no longer in the catalogue")
                continue
            api = batch_api(model)
            key = f"{batch.id}:{job.pk}"
            try:
                items = list(job.items.filter(state=ItemState.QUEUED).order_by("line"))
                found = api.find(key, custom_ids=[f"i{it.pk}" for it in items],
                                 since=job.first_attempt_at - FIND_SKEW) \
                    if job.attempts > 1 and job.first_attempt_at else None
                if found == WAIT:  # an earlier submission may still be processing upstream
                    job.attempts -= 1
                    job.save(update_fields=["attempts"])
                    continue
                upstream_id = found or api.submit(
                    key, [(f"i{it.pk}", _upstream_request(it, model)) for it in items])
            except Exception as exc:  # the SDKs' errors: retried next tick, up to a point
                logger.warning("batch_submit_failed", extra={"job": job.pk, "error": str(exc)})
                status = getattr(exc, "status_code", None)
                if (status is not None and 400 <= status < 500 and status != 429) or \
                        job.attempts >= 5:
                    _fail_job(job, f"the provider refused the batch: {exc}")
                continue
            _pause("submit")
            _pause(f"submit_{job.provider_kind}")
            job.upstream_id, job.state, job.submitted_at = upstream_id, JobState.SUBMITTED, \
                timezone.now()
            job.save(update_fields=["upstream_id", "state", "submitted_at"])
            job.items.filter(state=ItemState.QUEUED).update(state=ItemState.SUBMITTED)


# --- Step 3: poll and write back -----------------------------------------------------------------

def _poll(batch: Batch, auth: AuthContext | None, catalogue: Catalogue, *,
          cancel: bool = False) -> None:
    for job in list(ProviderJob.objects.filter(batch=batch, state=JobState.SUBMITTED)):
        model = catalogue.get(job.model)
        if model is None:
            with transaction.atomic():
                _fail_job(job, f"model {job.model} is no longer in the catalogue")
            continue
        api = batch_api(model)
        try:
            if cancel:
                api.cancel(job.upstream_id)
            state = api.state(job.upstream_id)
        except Exception as exc:
            logger.warning("batch_poll_failed", extra={"job": job.pk, "error": str(exc)})
            continue
        if not state.ended:
            continue
        _pause("poll")
        outcomes = {o.upstream_custom_id: o for o in api.results(job.upstream_id)}
        pks = list(job.items.filter(state=ItemState.SUBMITTED).order_by("line")
                   .values_list("pk", flat=True))
        for chunk in _chunks(pks, settings.ASAHI_BATCH_CHUNK):
            store = _Store()
            with transaction.atomic():
                items = list(BatchItem.objects.select_for_update(skip_locked=True)
                             .filter(pk__in=chunk, state=ItemState.SUBMITTED))
                rows: list[LedgerRow] = []
                for item in items:
                    o = outcomes.get(f"i{item.pk}")
                    if o is None:
                        continue
                    if o.result is None:
                        err = o.error or {}
                        _fail(item, code=str(err.get("code", "upstream_error")),
                              message=str(err.get("message", "")), status=o.status_code)
                        continue
                    if auth is None:  # the key was revoked meanwhile: record under the batch
                        _fail(item, code="api_key_revoked", message="the batch's API key was "
                              "revoked before its result arrived", status=401)
                        continue
                    call = _call(auth, item, rows)
                    _answered(item, call, result=o.result, model=model, catalogue=catalogue,
                              factor=BATCH_PRICE_FACTOR, technique="batch_discount")
                    store.add(item, call, o.result, model)
                _save_items(items)
                ledger.write_now(rows)
                _pause("writeback")
            store.run()
        with transaction.atomic():
            # Ended without a result for these (cancelled or expired upstream).
            job.items.filter(state=ItemState.SUBMITTED).update(
                state=ItemState.FAILED, error_code=f"upstream_{state.status}",
                error_message=f"the provider's batch ended ({state.status}) without a result",
                status_code=500, finished_at=timezone.now())
            job.state, job.finished_at = JobState.DONE, timezone.now()
            job.save(update_fields=["state", "finished_at"])


# --- Providers without a batch API: run by the worker, bounded and rate-limited ------------------

async def _run_items(auth: AuthContext, items: list[BatchItem], catalogue: Catalogue,
                     rows: list[LedgerRow], store: _Store) -> None:
    sem = asyncio.Semaphore(settings.ASAHI_BATCH_FALLBACK_CONCURRENCY)
    limited = asyncio.Event()

    async def one(item: BatchItem) -> None:
        model = catalogue.get(item.model)
        if model is None:
            _fail(item, code="model_not_found", message=f"model {item.model} is gone", status=404)
            return
        async with sem:
            if limited.is_set():
                return
            p = _plan_of(item, model)
            ticket = await enforcement.admit_rate(
                auth=auth, tokens=p.input_tokens_est + p.max_output_tokens)
            if ticket is None:  # a rate limit: the item waits for a later tick
                limited.set()
                return
            call = _call(auth, item, rows)
            try:
                result, used, _ms, _notes = await pipeline.call_upstream(call, p)
            except AsahiError as err:
                await enforcement.release(ticket)
                _fail(item, code=err.code, message=err.message, status=err.status)
                return
            await enforcement.settle(ticket, cost_usd=Decimal(0),
                                     tokens=result.usage.total_tokens)
        _answered(item, call, result=result, model=used, catalogue=catalogue,
                  factor=Decimal(1), technique="batch_worker")
        store.add(item, call, result, used)

    await asyncio.gather(*(one(i) for i in items))


def _run_fallback(batch: Batch, auth: AuthContext, catalogue: Catalogue) -> None:
    size = settings.ASAHI_BATCH_FALLBACK_CONCURRENCY * 4
    while True:
        store = _Store()
        with transaction.atomic():
            items = list(BatchItem.objects.select_for_update(skip_locked=True)
                         .filter(batch=batch, state=ItemState.QUEUED, job__isnull=True)
                         .exclude(provider_kind__in=BATCH_KINDS).order_by("line")[:size])
            if not items:
                return
            rows: list[LedgerRow] = []
            asyncio.run(_run_items(auth, items, catalogue, rows, store))
            changed = [i for i in items if i.state != ItemState.QUEUED]
            _save_items(changed)
            ledger.write_now(rows)
            _pause("writeback")
        store.run()
        if len(changed) < len(items):
            return  # rate-limited: the rest waits for the next tick


# --- Finalize ------------------------------------------------------------------------------------

def _line(item: Any) -> bytes:
    if item["state"] == ItemState.DONE:
        return orjson.dumps({"id": f"batch_req_{item['pk']}", "custom_id": item["custom_id"],
                             "response": {"status_code": 200, "request_id": item["request_id"],
                                          "body": item["response"]}, "error": None})
    error = {"code": item["error_code"], "message": item["error_message"]}
    response = None if item["rejected"] else {
        "status_code": item["status_code"] or 500, "request_id": item["request_id"],
        "body": {"error": {**error, "type": "invalid_request_error"
                           if (item["status_code"] or 500) < 500 else "api_error"}}}
    return orjson.dumps({"id": f"batch_req_{item['pk']}", "custom_id": item["custom_id"],
                         "line": item["line"], "response": response, "error": error})


def _ticket(batch: Batch) -> enforcement.Ticket:
    return enforcement.Ticket(reservation_id=batch.reservation_id,
                              reserved_nanousd=pricing.to_nano(batch.reserved_usd),
                              org_id=str(batch.organization_id))


def _settle_finished(batch: Batch) -> bool:
    """Settle the budget share of every finished item not settled yet: its worst case leaves the
    hold and its cost is charged, so a long batch holds only what its open items may still cost.
    Redis first, then the flag: a worker killed in between redoes the call, which the part set
    makes a no-op. False while Redis is unreachable (finalization waits for it)."""
    if not batch.reservation_id:
        return True
    ticket = _ticket(batch)
    while True:
        chunk = list(BatchItem.objects.filter(batch=batch, budget_settled=False,
                                              state__in=(ItemState.DONE, ItemState.FAILED))
                     .order_by("pk").values_list("pk", "reserved_usd", "cost_usd")[:1000])
        if not chunk:
            return True
        parts = [(str(pk), reserved, cost) for pk, reserved, cost in chunk]
        if not asyncio.run(enforcement.settle_parts(ticket, parts=parts)):
            return False
        _pause("settle_parts")
        BatchItem.objects.filter(pk__in=[pk for pk, _, _ in chunk]).update(budget_settled=True)


def _finalize(batch: Batch, ending: str | None) -> bool:
    from batching.services import file_store

    if BatchItem.objects.filter(batch=batch, state__in=OPEN_ITEM_STATES).exists():
        return False
    with transaction.atomic():
        b = Batch.objects.select_for_update().get(pk=batch.pk)
        if b.status not in ACTIVE:
            return False
        now = timezone.now()
        b.finalizing_at = b.finalizing_at or now
        items = list(b.items.order_by("line").values(
            "pk", "custom_id", "line", "state", "response", "request_id", "error_code",
            "error_message", "status_code", "rejected", "cost_usd"))
        done = [_line(i) for i in items if i["state"] == ItemState.DONE]
        failed = [_line(i) for i in items if i["state"] == ItemState.FAILED]
        rejected = [i for i in items if i["rejected"]]
        if rejected:
            b.errors = {"object": "list", "data": [
                {"code": i["error_code"], "message": i["error_message"], "line": i["line"],
                 "param": None} for i in rejected[:1000]]}
        if done:
            b.output_file = file_store(organization_id=b.organization_id,
                                       purpose=FilePurpose.BATCH_OUTPUT,
                                       filename=f"{b.id}_output.jsonl", data=b"\n".join(done) + b"\n",
                                       name=f"{b.organization_id}/{b.id}/output.jsonl")
        if failed:
            b.error_file = file_store(organization_id=b.organization_id,
                                      purpose=FilePurpose.BATCH_OUTPUT,
                                      filename=f"{b.id}_error.jsonl", data=b"\n".join(failed) + b"\n",
                                      name=f"{b.organization_id}/{b.id}/errors.jsonl")
        if ending == "cancelled":
            b.status, b.cancelled_at = BatchStatus.CANCELLED, now
        elif ending == "expired":
            b.status, b.expired_at = BatchStatus.EXPIRED, now
        elif len(rejected) == len(items):
            b.status, b.failed_at = BatchStatus.FAILED, now
        else:
            b.status, b.completed_at = BatchStatus.COMPLETED, now
        b.save()
        if b.reservation_id:
            # Every item has settled its own share; drop what is left of the hold (idempotent per
            # reservation: a finalization redone after a crash releases nothing twice).
            asyncio.run(enforcement.release(_ticket(b)))
        if b.kind == BatchKind.DEFERRED and b.webhook_url:
            from batching.tasks import deliver_webhook

            transaction.on_commit(lambda: deliver_webhook.delay(b.id))
    return True


def _close_open(batch: Batch, *, code: str, message: str) -> None:
    """Items not at a provider when the batch ends: reported as failed, never charged."""
    BatchItem.objects.filter(batch=batch, state__in=(ItemState.PENDING, ItemState.QUEUED)).update(
        state=ItemState.FAILED, error_code=code, error_message=message, status_code=499,
        finished_at=timezone.now())
    ProviderJob.objects.filter(batch=batch, state=JobState.CREATED).update(
        state=JobState.FAILED, error=message, finished_at=timezone.now())


def advance(*, batch_id: str) -> str:
    """Do every step of this batch that is due; returns the batch's status afterwards."""
    with _advisory(batch_id) as got:
        if not got:
            return "busy"
        batch = Batch.objects.filter(pk=batch_id).first()
        if batch is None or batch.status not in ACTIVE:
            return batch.status if batch else "missing"
        auth = auth_context_for_key(key_id=batch.api_key_id) if batch.api_key_id else None
        catalogue = get_catalogue()
        ending: str | None = None
        if batch.status == BatchStatus.CANCELLING:
            ending = "cancelled"
        elif timezone.now() >= batch.expires_at:
            ending = "expired"
        elif auth is None:
            ending = "cancelled"
        if ending is None and auth is not None:
            # Lines were validated when the batch was created; from here on it is running.
            Batch.objects.filter(pk=batch.pk, status=BatchStatus.VALIDATING).update(
                status=BatchStatus.IN_PROGRESS, in_progress_at=timezone.now())
            _route(batch, auth)
            _group(batch)
            _submit(batch, catalogue)
            _run_fallback(batch, auth, catalogue)
        _poll(batch, auth, catalogue, cancel=ending is not None)
        if ending is not None:
            reason = {"cancelled": ("batch_cancelled", "the batch was cancelled"),
                      "expired": ("batch_expired", "the batch expired before this request ran")}
            _close_open(batch, code=reason[ending][0], message=reason[ending][1])
        # Finalization releases the rest of the hold: only once every finished item has settled.
        if _settle_finished(batch):
            _finalize(batch, ending)
        return Batch.objects.values_list("status", flat=True).get(pk=batch_id)


def open_batch_ids() -> list[str]:
    return list(Batch.objects.filter(status__in=ACTIVE).values_list("pk", flat=True))
