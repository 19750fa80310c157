"""Reads of the batching app, always scoped to the caller's organization, rendered as OpenAI's
File and Batch objects (so the official SDK parses them unchanged)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, Sum

from asahi_project.errors import NotFound
from batching.choices import BatchKind, ItemState
from batching.models import Batch, BatchFile, BatchItem


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def file_get(*, org_id: uuid.UUID, file_id: str) -> BatchFile:
    f = BatchFile.objects.filter(pk=file_id, organization_id=org_id).first()
    if f is None:
        raise NotFound(f"no file {file_id!r}", code="file_not_found")
    return f


def file_json(f: BatchFile) -> dict[str, Any]:
    return {"id": f.id, "object": "file", "bytes": f.bytes, "created_at": _ts(f.created_at),
            "filename": f.filename, "purpose": f.purpose, "status": "processed",
            "expires_at": None, "status_details": None}


def batch_get(*, org_id: uuid.UUID, batch_id: str, kind: str = BatchKind.OPENAI) -> Batch:
    b = Batch.objects.filter(pk=batch_id, organization_id=org_id, kind=kind).first()
    if b is None:
        raise NotFound(f"no batch {batch_id!r}", code="batch_not_found")
    return b


_EMPTY: dict[str, Any] = {"total": 0, "completed": 0, "failed": 0, "cost": 0, "sync": 0,
                          "hits": 0}


def _counts(batch_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = (BatchItem.objects.filter(batch_id__in=batch_ids).values("batch_id")
            .annotate(total=Count("pk"), completed=Count("pk", filter=Q(state=ItemState.DONE)),
                      failed=Count("pk", filter=Q(state=ItemState.FAILED)),
                      cost=Sum("cost_usd"), sync=Sum("sync_cost_usd"),
                      hits=Count("pk", filter=Q(cache_tier__gt=0))))
    return {r["batch_id"]: dict(r) for r in rows}


def batch_json(b: Batch, counts: dict[str, Any] | None = None) -> dict[str, Any]:
    if counts is None:
        counts = _counts([b.id]).get(b.id, _EMPTY)
    return {
        "id": b.id, "object": "batch", "endpoint": b.endpoint, "errors": b.errors,
        "input_file_id": b.input_file_id or "", "completion_window": b.completion_window,
        "status": b.status, "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
        "created_at": _ts(b.created_at), "in_progress_at": _ts(b.in_progress_at),
        "expires_at": _ts(b.expires_at), "finalizing_at": _ts(b.finalizing_at),
        "completed_at": _ts(b.completed_at), "failed_at": _ts(b.failed_at),
        "expired_at": _ts(b.expired_at), "cancelling_at": _ts(b.cancelling_at),
        "cancelled_at": _ts(b.cancelled_at),
        "request_counts": {k: counts[k] for k in ("total", "completed", "failed")},
        "metadata": b.metadata or None,
        # Asahi's extension (the SDK keeps unknown fields): what the batch cost so far, what the
        # same answers cost synchronously, and how many came from the cache for free.
        "asahi": {"cost_usd": str(counts["cost"] or 0),
                  "synchronous_cost_usd": str(counts["sync"] or 0),
                  "cache_hits": counts["hits"]},
    }


def batch_list(*, org_id: uuid.UUID, after: str | None, limit: int) -> dict[str, Any]:
    qs = Batch.objects.filter(organization_id=org_id, kind=BatchKind.OPENAI).order_by(
        "-created_at", "-pk")
    if after:
        anchor = qs.filter(pk=after).values_list("created_at", flat=True).first()
        if anchor is None:
            raise NotFound(f"no batch {after!r}", code="batch_not_found", param="after")
        qs = qs.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, pk__lt=after))
    page = list(qs[:limit + 1])
    batches = page[:limit]
    counts = _counts([b.id for b in batches])
    data = [batch_json(b, counts.get(b.id, _EMPTY)) for b in batches]
    return {"object": "list", "data": data, "has_more": len(page) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def deferred_json(b: Batch) -> dict[str, Any]:
    """A deferred /infer request: its status and, when answered, /infer's response shape."""
    item = b.items.first()
    out: dict[str, Any] = {"job_id": b.id, "status": b.status,
                           "created_at": _ts(b.created_at), "result": None, "error": None}
    if item is None:
        return out
    if item.state == ItemState.DONE and item.response:
        choice = (item.response.get("choices") or [{}])[0]
        usage = item.response.get("usage") or {}
        out["result"] = {
            "request_id": item.request_id,
            "response": (choice.get("message") or {}).get("content") or "",
            "model_used": item.model or item.response.get("model"),
            "tokens_input": usage.get("prompt_tokens", 0),
            "tokens_output": usage.get("completion_tokens", 0),
            "cost": float(item.cost_usd), "cost_synchronous": float(item.sync_cost_usd),
            "cache_hit": item.cache_tier > 0, "cache_tier": item.cache_tier,
            "optimization_techniques": item.techniques,
            "task_type": (item.plan or {}).get("task_type", ""),
        }
    elif item.state == ItemState.FAILED:
        out["error"] = {"code": item.error_code, "message": item.error_message,
                        "status": item.status_code}
    return out
