"""The pipeline's entry to tier 2 (semantic): embed, scoped nearest-neighbour lookup, decide, store.

Only single-turn requests without tools are eligible: the meaning of a multi-turn conversation is not
the meaning of its last message. The embedder runs in a worker thread under a time budget; when it is
slow or down the tier is skipped (recorded as `semantic_bypass`) and the request goes on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone

from caching.exact import CachedAnswer

if TYPE_CHECKING:
    from inference.pipeline import GatewayCall, Plan
    from inference.types import ModelInfo

logger = logging.getLogger("asahi.cache")
EMBED_BUDGET_SECONDS = 0.5
EXACT_SCAN_LIMIT = 20_000  # scopes up to this size are scanned exactly (no HNSW recall loss)
NEIGHBOURS = 3


def _query_text(call: GatewayCall) -> str | None:
    req = call.chat
    if req.tools or req.response_format:
        return None
    users = [m for m in req.messages if m.role == "user"]
    others = [m for m in req.messages if m.role not in ("user", "system", "developer")]
    if len(users) != 1 or others:
        return None
    system = " ".join(m.text() for m in req.messages if m.role in ("system", "developer"))
    text = users[0].text().strip()
    return f"{system}\n{text}".strip() if system else text


def _embedder() -> Any | None:
    try:
        from caching.semantic.embedders import get_local_embedder

        return get_local_embedder()
    except Exception as exc:  # missing artefact or package: the tier is off, the request goes on
        logger.warning("semantic_embedder_unavailable", extra={"error": repr(exc)})
        return None


def embedder_id(embedder: Any) -> str:
    return f"{embedder.name}:{embedder.version}"


def nearest(*, org_id: uuid.UUID, model: str, task_type: str, embedder: str, vector: Any,
            k: int = NEIGHBOURS) -> list[tuple[int, str, dict[str, Any], float]]:
    """(id, prompt, answer, cosine similarity) of the k nearest live entries in the scope."""
    from django.db import connection

    vec = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    scope = ("organization_id = %s AND model = %s AND task_type = %s AND embedder = %s "
             "AND expires_at > now()")
    params: list[Any] = [org_id, model, task_type, embedder]
    try:
        with connection.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM caching_semanticentry WHERE {scope} "  # noqa: S608
                        f"LIMIT {EXACT_SCAN_LIMIT + 1}) s", params)
            size = cur.fetchone()[0]
            if size == 0:
                return []
            if size <= EXACT_SCAN_LIMIT:
                # Materialized CTE: filter first, then an exact distance sort over the scope.
                sql = (f"WITH scoped AS MATERIALIZED (SELECT id, prompt, answer, embedding FROM "  # noqa: S608
                       f"caching_semanticentry WHERE {scope}) SELECT id, prompt, answer, "
                       f"1 - (embedding <=> %s::vector) FROM scoped ORDER BY embedding <=> "
                       f"%s::vector LIMIT {k}")
            else:
                cur.execute("SET hnsw.ef_search = 200")
                sql = (f"SELECT id, prompt, answer, 1 - (embedding <=> %s::vector) FROM "  # noqa: S608
                       f"caching_semanticentry WHERE {scope} ORDER BY embedding <=> %s::vector "
                       f"LIMIT {k}")
                cur.execute(sql, [vec, *params, vec])
                return [(r[0], r[1], r[2], float(r[3])) for r in cur.fetchall()]
            cur.execute(sql, [*params, vec, vec])
            return [(r[0], r[1], r[2], float(r[3])) for r in cur.fetchall()]
    finally:
        close_old_connections()


def _lookup_sync(call: GatewayCall, plan: Plan, embedder: Any, vector: Any, query: str,
                 ) -> tuple[CachedAnswer, float, str] | None:
    from caching.semantic.decision import DEFAULT_THRESHOLDS, Thresholds, decide

    task = plan.task_type
    base = DEFAULT_THRESHOLDS.get(task) or DEFAULT_THRESHOLDS["default"]
    override = call.auth.policy.semantic_threshold
    thresholds = Thresholds(high=override, low=min(base.low, override)) if override else base
    rows = nearest(org_id=call.auth.org_id, model=plan.chain[0].name, task_type=task,
                   embedder=embedder_id(embedder), vector=vector)
    for entry_id, prompt, answer, similarity in rows:
        decision = decide(query=query, candidate=prompt, similarity=similarity, task_type=task,
                          thresholds=thresholds)
        call.semantic_note = decision.reason  # type: ignore[attr-defined]
        if decision.hit:
            from caching.models import SemanticEntry

            SemanticEntry.objects.filter(pk=entry_id).update(hit_count=F("hit_count") + 1,
                                                             last_hit_at=timezone.now())
            close_old_connections()
            # Raw SQL returns jsonb as text.
            hit = CachedAnswer(**(orjson.loads(answer) if isinstance(answer, str) else answer))
            return hit, similarity, decision.reason
        if similarity < thresholds.low:
            break
    return None


async def semantic_lookup(*, call: GatewayCall, plan: Plan
                          ) -> tuple[CachedAnswer, float, str] | None:
    if not call.auth.policy.semantic_cache_enabled or not call.semantic:
        return None
    query = _query_text(call)
    if query is None:
        return None
    embedder = _embedder()
    if embedder is None:
        plan.techniques.append("semantic_bypass")
        return None
    try:
        vector = (await asyncio.wait_for(asyncio.to_thread(embedder.embed, [query]),
                                         EMBED_BUDGET_SECONDS))[0]
        call.semantic_vector = (embedder_id(embedder), vector)  # type: ignore[attr-defined]
        return await asyncio.to_thread(_lookup_sync, call, plan, embedder, vector, query)
    except Exception as exc:  # slow or failed embedder/DB: skip the tier, never fail the request
        logger.warning("semantic_bypass", extra={"error": repr(exc)})
        plan.techniques.append("semantic_bypass")
        return None


def _store_sync(*, org_id: uuid.UUID, model: str, task_type: str, embedder_name: str,
                vector: Any, prompt: str, answer: CachedAnswer, ttl_seconds: int) -> None:
    from caching.models import SemanticEntry

    try:
        SemanticEntry.objects.create(
            organization_id=org_id, model=model, task_type=task_type, embedder=embedder_name,
            embedding=list(map(float, vector)), prompt=prompt, answer=answer.__dict__,
            expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
        )
    except Exception:
        logger.exception("semantic_store_failed")
    finally:
        close_old_connections()


def semantic_store(*, call: GatewayCall, plan: Plan, model: ModelInfo,
                   answer: CachedAnswer) -> None:
    """Fire-and-forget insert after a miss (the vector was computed during the lookup)."""
    stored = getattr(call, "semantic_vector", None)
    query = _query_text(call)
    if stored is None or query is None or not call.auth.policy.semantic_cache_enabled \
            or not call.semantic:
        return
    name, vector = stored
    loop = asyncio.get_running_loop()
    task = loop.run_in_executor(None, lambda: _store_sync(
        org_id=call.auth.org_id, model=plan.chain[0].name, task_type=plan.task_type,
        embedder_name=name, vector=vector, prompt=query, answer=answer,
        ttl_seconds=call.auth.policy.cache_ttl_seconds))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set[asyncio.Future[None]] = set()


async def drain() -> None:
    """Wait for pending stores (tests and graceful shutdown)."""
    if _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)
