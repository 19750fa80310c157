"""Write side of cache management: invalidation across the three tiers, audited.

Scopes (`POST /cache/invalidate`, the admin action and tests all come through `cache_invalidate`):

* ``all`` — every exact key, semantic row and tier-3 digest of the organization;
* ``model`` — entries whose answer came from `model` (exact: the stored answer's model; semantic:
  the entry's model; tier 3: the requested model in the key or the model that built the digest);
* ``age`` — entries created more than `older_than_seconds` ago;
* ``entry`` — one entry: an integer `entry_id` is a semantic row id; a 64-hex `entry_id` is an exact
  cache digest and also a document hash (its tier-3 digests are dropped).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from asahi_project.errors import InvalidRequest
from asahi_project.redis_client import get_sync_redis
from caching import keys
from caching.models import IntermediateResult, SemanticEntry

SCOPES = ("all", "model", "age", "entry")
BATCH = 500
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Invalidation:
    scope: str
    exact_keys: int
    semantic_rows: int
    intermediate_keys: int
    intermediate_rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(items: Iterator[bytes], size: int = BATCH) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _unlink_matching(pattern: str, keep: Callable[[bytes, dict[str, Any] | None], bool] | None,
                     ) -> int:
    """SCAN the pattern and UNLINK the keys `keep` selects (all when None). `keep` gets the key and
    its decoded JSON value (values are read in MGET batches only when a filter needs them)."""
    redis = get_sync_redis()
    removed = 0
    for batch in _batches(redis.scan_iter(match=pattern, count=BATCH)):
        if keep is not None:
            values = redis.mget(batch)
            chosen = []
            for key, raw in zip(batch, values, strict=True):
                try:
                    data = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    data = None
                if keep(key, data):
                    chosen.append(key)
            batch = chosen
        if batch:
            removed += int(redis.unlink(*batch))
    return removed


def _t3_parts(key: bytes) -> tuple[str, str, str]:
    """(document hash, step, model) of a tier-3 key."""
    tail = key.decode().split(":t3:", 1)[1]
    doc_hash, step, model = tail.split(":", 2)
    return doc_hash, step, model


def cache_invalidate(*, organization_id: uuid.UUID, scope: str, actor: str,
                     model: str | None = None, older_than_seconds: int | None = None,
                     entry_id: str | int | None = None, ip: str | None = None) -> Invalidation:
    from governance.services import audit_log

    exact_pattern = keys.exact_pattern(organization_id)
    t3_pattern = keys.intermediate_pattern(organization_id)
    semantic = SemanticEntry.objects.filter(organization_id=organization_id)
    inter = IntermediateResult.objects.filter(organization_id=organization_id)
    if scope == "all":
        exact_n = _unlink_matching(exact_pattern, None)
        t3_n = _unlink_matching(t3_pattern, None)
    elif scope == "model":
        if not model:
            raise InvalidRequest("scope 'model' needs model", param="model")
        exact_n = _unlink_matching(exact_pattern, lambda k, v: bool(v and v.get("model") == model))
        t3_n = _unlink_matching(t3_pattern, lambda k, v: _t3_parts(k)[2] == model
                                or bool(v and v.get("model") == model))
        semantic = semantic.filter(model=model)
        inter = inter.filter(model=model)
    elif scope == "age":
        if older_than_seconds is None or older_than_seconds < 0:
            raise InvalidRequest("scope 'age' needs older_than_seconds >= 0",
                                 param="older_than_seconds")
        cutoff = time.time() - older_than_seconds
        def older(_key: bytes, value: dict[str, Any] | None) -> bool:
            return bool(value and value.get("created", 0) < cutoff)

        exact_n = _unlink_matching(exact_pattern, older)
        t3_n = _unlink_matching(t3_pattern, older)
        since = timezone.now() - timedelta(seconds=older_than_seconds)
        semantic = semantic.filter(created_at__lt=since)
        inter = inter.filter(created_at__lt=since)
    elif scope == "entry":
        ident = str(entry_id or "").strip().lower()
        if ident.isdigit():
            exact_n = t3_n = 0
            semantic = semantic.filter(pk=int(ident))
            inter = inter.none()
        elif _HEX64.match(ident):
            redis = get_sync_redis()
            exact_n = int(redis.unlink(keys.exact_key(organization_id, ident)))
            t3_n = _unlink_matching(t3_pattern, lambda k, v: _t3_parts(k)[0] == ident)
            semantic = semantic.none()
            inter = inter.filter(document_hash=ident)
        else:
            raise InvalidRequest("scope 'entry' needs entry_id: a semantic entry id (integer) or a "
                                 "64-hex exact-cache digest / document hash", param="entry_id")
    else:
        raise InvalidRequest(f"scope must be one of: {', '.join(SCOPES)}", param="scope")
    with transaction.atomic():
        semantic_n, _ = semantic.delete()
        inter_n, _ = inter.delete()
        result = Invalidation(scope=scope, exact_keys=exact_n, semantic_rows=semantic_n,
                              intermediate_keys=t3_n, intermediate_rows=inter_n)
        audit_log(action="cache_invalidated", actor=actor, organization=organization_id,
                  target_type="cache", target_id=scope, ip=ip,
                  details={**result.as_dict(), "model": model,
                           "older_than_seconds": older_than_seconds,
                           "entry_id": str(entry_id) if entry_id is not None else None})
    return result


def evict_expired() -> dict[str, int]:
    """Drop expired semantic rows, and tier-3 rows whose Redis digest has expired."""
    semantic_n, _ = SemanticEntry.objects.filter(expires_at__lte=timezone.now()).delete()
    redis = get_sync_redis()
    stale: list[int] = []
    rows = IntermediateResult.objects.values_list("id", "organization_id", "document_hash", "step",
                                                  "model")
    batch: list[tuple[int, str]] = []
    for pk, org, doc_hash, step, model in rows.iterator(chunk_size=BATCH):
        batch.append((pk, keys.intermediate_key(org, doc_hash, step, model)))
        if len(batch) >= BATCH:
            stale += _missing(redis, batch)
            batch = []
    if batch:
        stale += _missing(redis, batch)
    inter_n = 0
    for i in range(0, len(stale), BATCH):
        n, _ = IntermediateResult.objects.filter(pk__in=stale[i:i + BATCH]).delete()
        inter_n += n
    return {"semantic_rows": semantic_n, "intermediate_rows": inter_n}


def _missing(redis: Any, batch: list[tuple[int, str]]) -> list[int]:
    pipe = redis.pipeline(transaction=False)
    for _pk, key in batch:
        pipe.exists(key)
    return [pk for (pk, _key), present in zip(batch, pipe.execute(), strict=True) if not present]
