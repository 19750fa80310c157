"""The hot path as an explicit, ordered pipeline over a typed request context:

    validate → plan (route / explicit model, policy) → exact cache → semantic cache → admit (rate limits
    + budget reservation) → call upstream (retries, fallback, breaker) → settle → store → record

Nothing here touches the database synchronously: keys, policies and the catalogue come from per-process
caches, limits from one Redis script call, and the ledger row goes to the buffered writer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from asahi_project.errors import (
    AsahiError,
    InvalidRequest,
    NoModelsAvailable,
    PayloadTooLarge,
    PermissionDenied,
    UpstreamError,
)
from caching import exact
from caching.bridge import SemanticOutcome, SemanticScope, semantic_lookup, semantic_store
from caching.keys import canonical_hash
from caching.singleflight import Flight
from caching.singleflight import join as join_flight
from governance import enforcement
from governance.types import AuthContext
from inference import pricing
from inference.ledger import AuditRow, LedgerRow, ledger
from inference.providers.errors import ProviderError
from inference.providers.registry import get_client
from inference.providers.types import ChatRequest, ChatResult, StreamEvent, ToolCall, Usage
from inference.selectors import Catalogue, aget_catalogue
from inference.types import ModelInfo

logger = logging.getLogger("asahi.request")
DEFAULT_MAX_OUTPUT = 4096
TIER_NAMES = {0: "miss", 1: "exact", 2: "semantic", 3: "intermediate"}
# The error_code of a served (status "ok") ledger row admitted while Redis was down under a
# fail-open policy: its spend was never counted against a budget or a rate limit.
UNMETERED = "unmetered"


@dataclass
class RoutingOptions:
    mode: str | None = None
    quality_preference: str | None = None
    latency_preference: str | None = None
    latency_budget_ms: int | None = None
    quality_threshold: float | None = None
    cost_budget: float | None = None
    model_override: str | None = None


@dataclass
class GatewayCall:
    auth: AuthContext
    request_id: str
    endpoint: str  # "chat" | "infer"
    chat: ChatRequest
    routing: RoutingOptions = field(default_factory=RoutingOptions)
    cache_mode: str = "default"
    document_id: str | None = None
    client_ip: str | None = None
    started: float = field(default_factory=time.perf_counter)
    include_usage: bool = False
    semantic: bool = True  # False for internal step calls (tier 3): exact cache only
    # Lets a caller that decomposes a request (tier 3) correct the ledger row of one of its parts
    # (tier, baseline) before it is buffered; the ledger is append-only afterwards.
    ledger_adjust: Callable[[LedgerRow], None] | None = None
    # Set by the semantic tier: its lookup (whose vector the store after a miss reuses), and why
    # it served or refused a stored answer (the `X-Asahi-Cache-Reason` header).
    semantic_outcome: SemanticOutcome | None = None
    semantic_reason: str = ""
    # Admitted without budget or rate-limit checks (Redis down, policy fails open): the ledger row
    # carries error_code UNMETERED and the response the X-Asahi-Unmetered header.
    unmetered: bool = False
    # Milliseconds per stage, for the `Server-Timing` header (where a request spent its time).
    timings: dict[str, float] = field(default_factory=dict)
    # Where `record` puts the ledger row instead of the buffered writer: batch items write theirs
    # in the transaction that changes the item's state, so a killed worker charges none twice.
    ledger_sink: Callable[[LedgerRow], None] | None = None


@dataclass
class Plan:
    chain: list[ModelInfo]
    task_type: str
    routing_mode: str
    reason: str
    max_output_tokens: int
    input_tokens_est: int
    techniques: list[str] = field(default_factory=list)


@dataclass
class GatewayResponse:
    result: ChatResult
    model: ModelInfo
    cache_tier: int
    similarity: float | None
    cost: Decimal
    baseline_cost: Decimal
    routing_reason: str
    task_type: str
    techniques: list[str]
    latency_ms: float


def prompt_text(req: ChatRequest) -> str:
    return "\n".join(m.text() for m in req.messages)


def _allowed(auth: AuthContext, model: ModelInfo) -> str | None:
    """None when the model may be used; else the reason it may not."""
    policy = auth.policy
    if policy.allowed_models and model.name not in policy.allowed_models:
        return f"model {model.name} is not in the organization's allowed models"
    if auth.key_allowed_models and model.name not in auth.key_allowed_models:
        return f"model {model.name} is not allowed for this API key"
    if policy.allowed_providers and model.provider not in policy.allowed_providers:
        return f"provider {model.provider} is not in the organization's allowed providers"
    return None


async def plan(call: GatewayCall, catalogue: Catalogue) -> Plan:
    from inference.planning import plan_route

    text = prompt_text(call.chat)
    if len(text) > settings.ASAHI_MAX_PROMPT_CHARS:
        raise PayloadTooLarge(
            f"prompt is {len(text)} characters; the limit is {settings.ASAHI_MAX_PROMPT_CHARS}",
            code="prompt_too_large", param="messages")
    input_est = pricing.estimate_tokens(len(text), len(call.chat.messages))
    return await plan_route(call=call, catalogue=catalogue, text=text, input_tokens_est=input_est,
                            allowed=_allowed)


def output_cap(call: GatewayCall, model: ModelInfo) -> int:
    if call.chat.max_tokens is not None:
        return min(call.chat.max_tokens, model.max_output_tokens or call.chat.max_tokens)
    # Asahi sends an explicit cap when the client gives none, so the budget reservation is honest.
    return min(DEFAULT_MAX_OUTPUT, model.max_output_tokens or DEFAULT_MAX_OUTPUT)


def check_request_limits(call: GatewayCall, p: Plan) -> None:
    model = p.chain[0]
    if p.input_tokens_est // 2 > model.context_window:
        raise InvalidRequest(
            f"prompt (~{p.input_tokens_est} tokens) exceeds {model.name}'s context window of "
            f"{model.context_window} tokens", code="context_length_exceeded", param="messages")
    max_cost = call.auth.policy.max_cost_per_request_usd
    if max_cost is not None:
        worst = pricing.worst_case_cost(model, input_tokens=p.input_tokens_est,
                                        max_output_tokens=p.max_output_tokens)
        if worst > max_cost:
            raise PermissionDenied(
                f"worst-case cost ${worst} on {model.name} exceeds the organization's maximum "
                f"of ${max_cost} per request; lower max_tokens or choose a cheaper model",
                code="max_cost_per_request_exceeded")


def cache_digest(call: GatewayCall, p: Plan) -> str:
    req = call.chat
    return canonical_hash({
        "model": req.model if req.model != "auto" else f"auto:{p.chain[0].name}",
        "messages": [[m.role, m.text(), m.name, [(t.name, t.arguments) for t in m.tool_calls],
                      m.tool_call_id] for m in req.messages],
        "tools": [[t.name, t.description, t.parameters] for t in req.tools or []],
        "tool_choice": repr(req.tool_choice) if req.tool_choice else None,
        "temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens,
        "stop": req.stop, "response_format": req.response_format,
        "extra": {k: v for k, v in req.extra.items() if k in ("seed", "logit_bias", "n")} or None,
    })


def cache_allowed(call: GatewayCall) -> tuple[bool, bool]:
    """(may read, may write)."""
    policy = call.auth.policy
    if not policy.cache_enabled:
        return False, False
    temp = call.chat.temperature
    if temp is not None and temp > policy.cache_max_temperature:
        return False, False
    return call.cache_mode == "default", call.cache_mode in ("default", "no-cache")


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


@contextmanager
def _timed(call: GatewayCall, stage: str) -> Iterator[None]:
    """Record a stage's milliseconds for Server-Timing (only when it completes)."""
    started = time.perf_counter()
    yield
    call.timings[stage] = _ms(started)


def _baseline_model(call: GatewayCall, catalogue: Catalogue) -> ModelInfo | None:
    return catalogue.get(call.auth.policy.reference_model)


def record(call: GatewayCall, *, model: ModelInfo | None, p: Plan | None, status: str,
           http_status: int, usage: Usage | None = None, cost: Decimal = Decimal(0),
           baseline: Decimal = Decimal(0), cache_tier: int = 0, similarity: float | None = None,
           error_code: str = "", upstream_ms: float | None = None, response_text: str | None = None,
           ) -> float:
    latency = _ms(call.started)
    u = usage or Usage()
    store_prompt = call.auth.policy.retention_days > 0
    row = LedgerRow(
        request_id=call.request_id, organization_id=call.auth.org_id, api_key_id=call.auth.key_id,
        endpoint=call.endpoint, model=model.name if model else call.chat.model,
        provider=model.provider if model else "", task_type=p.task_type if p else "",
        routing_mode=p.routing_mode if p else "", routing_reason=p.reason if p else "",
        cache_tier=cache_tier, cache_similarity=similarity,
        cache_reason=call.semantic_reason[:300] if cache_tier in (0, 2) else "",
        status=status, http_status=http_status,
        error_code=error_code or (UNMETERED if call.unmetered else ""), input_tokens=u.input_tokens,
        cached_input_tokens=u.cached_input_tokens, cache_write_tokens=u.cache_write_tokens,
        output_tokens=u.output_tokens, reasoning_tokens=u.reasoning_tokens, cost_usd=cost,
        baseline_cost_usd=baseline, latency_ms=latency, upstream_latency_ms=upstream_ms,
        stream=call.chat.stream, user=(call.chat.user or "")[:200],
        temperature=call.chat.temperature,
        prompt=prompt_text(call.chat) if store_prompt and status == "ok" else None,
        response=response_text if store_prompt else None,
    )
    if call.ledger_adjust is not None:
        call.ledger_adjust(row)
        cache_tier = row.cache_tier
    if call.ledger_sink is not None:
        call.ledger_sink(row)
    else:
        ledger.append(row)
    _observe(call, model=model, status=status, cache_tier=cache_tier, usage=u, cost=cost,
             upstream_ms=upstream_ms)
    logger.info("request", extra={
        "org": str(call.auth.org_id), "key_prefix": call.auth.key_prefix,
        "model": model.name if model else call.chat.model, "cost": str(cost),
        "cache_tier": cache_tier, "latency_ms": round(latency, 3), "status": status,
    })
    return latency


def _observe(call: GatewayCall, *, model: ModelInfo | None, status: str, cache_tier: int,
             usage: Usage, cost: Decimal, upstream_ms: float | None) -> None:
    try:
        from analytics import metrics
    except ImportError:  # pragma: no cover - analytics app always installed
        return
    metrics.observe_request(org=str(call.auth.org_id), model=model.name if model else "",
                            status=status, cache_tier=TIER_NAMES[cache_tier],
                            input_tokens=usage.input_tokens,
                            cached_input_tokens=usage.cached_input_tokens,
                            output_tokens=usage.output_tokens,
                            reasoning_tokens=usage.reasoning_tokens, cost_usd=float(cost))
    if upstream_ms is not None and model is not None:
        metrics.observe_upstream(provider=model.provider, model=model.name,
                                 seconds=upstream_ms / 1000.0)


def audit_denial(call: GatewayCall, err: AsahiError) -> None:
    ledger.audit(AuditRow(
        action="request_denied", actor=call.auth.actor, organization_id=call.auth.org_id,
        target_type="request", target_id=call.request_id, ip=call.client_ip,
        request_id=call.request_id, details={"code": err.code, "message": err.message,
                                             "model": call.chat.model},
    ))


# --- Upstream calls with retries, breaker and fallback -------------------------------------------

def _upstream_request(call: GatewayCall, model: ModelInfo, max_out: int) -> ChatRequest:
    req = call.chat
    return ChatRequest(
        model=model.upstream_name, messages=req.messages, temperature=req.temperature,
        top_p=req.top_p, max_tokens=max_out, stop=req.stop, tools=req.tools,
        tool_choice=req.tool_choice, response_format=req.response_format, user=req.user,
        stream=req.stream, extra=req.extra,
    )


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, 2.0)
    return min(0.1 * (2 ** attempt), 1.0) * (0.5 + random.random())


def _adapter(model: ModelInfo) -> Any:
    return get_client(model.provider_kind, model.base_url or None, model.api_key or None,
                      timeout_s=settings.ASAHI_UPSTREAM_TIMEOUT)


async def call_upstream(call: GatewayCall, p: Plan) -> tuple[ChatResult, ModelInfo, float, list[str]]:
    """Try the chain in order; each model gets retries on retryable errors. Returns the result, the
    model that answered, upstream latency and notes of what failed along the way."""
    notes: list[str] = []
    last: ProviderError | None = None
    breaker = enforcement.breaker()
    for model in p.chain:
        if not await breaker.allow(f"{model.provider}:{model.name}"):
            notes.append(f"{model.name}: circuit open")
            continue
        req = _upstream_request(call, model, output_cap(call, model))
        for attempt in range(settings.ASAHI_UPSTREAM_RETRIES + 1):
            t0 = time.perf_counter()
            try:
                result = await _adapter(model).chat(req)
            except ProviderError as exc:
                last = exc
                if not exc.retryable:
                    break
                if attempt < settings.ASAHI_UPSTREAM_RETRIES:
                    await asyncio.sleep(_backoff(attempt, exc.retry_after))
                continue
            await breaker.record_success(f"{model.provider}:{model.name}")
            return result, model, _ms(t0), notes
        # One failure per request, after its retries: counting each attempt let two unlucky
        # requests open the circuit for everyone. A rejected request says nothing of the model.
        if last is not None and last.kind != "bad_request":
            await breaker.record_failure(f"{model.provider}:{model.name}")
        notes.append(f"{model.name}: {last.kind if last else 'failed'}")
        if last is not None and last.kind in ("bad_request", "auth"):
            break  # another model will not fix the request or our credentials
    raise upstream_error(last, notes)


def upstream_error(last: ProviderError | None, notes: list[str]) -> AsahiError:
    if last is None:
        return NoModelsAvailable("no model available: " + "; ".join(notes or ["all circuits open"]))
    tried = f" (tried: {'; '.join(notes)})" if notes else ""
    if last.kind == "rate_limit":
        from asahi_project.errors import RateLimited

        return RateLimited(f"upstream rate limit: {last.message}{tried}",
                           retry_after=last.retry_after, code="upstream_rate_limited")
    if last.kind == "bad_request":
        return InvalidRequest(f"upstream rejected the request: {last.message}",
                              code="upstream_bad_request")
    if last.kind == "timeout":
        return UpstreamError(f"upstream timed out{tried}", code="upstream_timeout", status=504)
    return UpstreamError(f"upstream error ({last.kind}): {last.message}{tried}",
                         code=f"upstream_{last.kind}")


# --- Non-streaming --------------------------------------------------------------------------------

def _from_cache(hit: exact.CachedAnswer) -> ChatResult:
    return ChatResult(
        content=hit.content,
        tool_calls=[ToolCall(**c) for c in hit.tool_calls],
        finish_reason=hit.finish_reason,  # type: ignore[arg-type]
        usage=Usage(input_tokens=hit.input_tokens, output_tokens=hit.output_tokens),
        model=hit.model,
        raw_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
    )


def _to_cache(result: ChatResult, model: ModelInfo, cost: Decimal) -> exact.CachedAnswer:
    return exact.CachedAnswer(
        content=result.content,
        tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments}
                    for c in result.tool_calls],
        finish_reason=result.finish_reason, model=model.name,
        input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
        cost_usd=str(cost), created=time.time(),
    )


def semantic_text(call: GatewayCall) -> str | None:
    """The text tier 2 embeds, or None when the request is not eligible: the meaning of a
    multi-turn conversation, or of a request with tools or a response format, is not the
    meaning of its last message."""
    if not call.semantic or not call.auth.policy.semantic_cache_enabled:
        return None
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


def _semantic_scope(call: GatewayCall, p: Plan) -> SemanticScope:
    policy = call.auth.policy
    return SemanticScope(org_id=call.auth.org_id, model=p.chain[0].name, task_type=p.task_type,
                         ttl_seconds=policy.cache_ttl_seconds,
                         threshold=policy.semantic_threshold or None)


async def _store(call: GatewayCall, digest: str, answer: exact.CachedAnswer) -> None:
    await exact.put(call.auth.org_id, digest, answer, call.auth.policy.cache_ttl_seconds)
    if call.semantic_outcome is not None:
        semantic_store(call.semantic_outcome, answer)


async def _lookup_caches(call: GatewayCall, p: Plan, catalogue: Catalogue, digest: str,
                         ) -> GatewayResponse | None:
    with _timed(call, "exact"):
        hit = await exact.get(call.auth.org_id, digest)
    tier, similarity = 1, None
    techniques = ["cache_tier_1"]
    if hit is None:
        query = semantic_text(call)
        if query is None:
            return None
        outcome = await semantic_lookup(query, _semantic_scope(call, p))
        call.timings.update(embed=outcome.embed_ms, lookup=outcome.lookup_ms)
        # Why the tier served or refused (X-Asahi-Cache-Reason); a reason is not a technique.
        call.semantic_reason, call.semantic_outcome = outcome.reason, outcome
        if outcome.bypassed and "semantic_bypass" not in p.techniques:
            p.techniques.append("semantic_bypass")
        if outcome.answer is None:
            return None
        hit, similarity = outcome.answer, outcome.similarity
        tier, techniques = 2, ["semantic_cache"]
    model = catalogue.get(hit.model) or p.chain[0]
    result = _from_cache(hit)
    baseline = pricing.baseline_cost(_baseline_model(call, catalogue), result.usage)
    latency = record(call, model=model, p=p, status="ok", http_status=200, cost=Decimal(0),
                     baseline=baseline, cache_tier=tier, similarity=similarity,
                     usage=Usage(input_tokens=hit.input_tokens, output_tokens=hit.output_tokens))
    return GatewayResponse(result=result, model=model, cache_tier=tier, similarity=similarity,
                           cost=Decimal(0), baseline_cost=baseline, routing_reason=p.reason,
                           task_type=p.task_type, techniques=p.techniques + techniques,
                           latency_ms=latency)


async def complete(call: GatewayCall) -> GatewayResponse:
    """Single flight: concurrent identical misses in an organization make one upstream call; the
    others wait for the leader and then read its answer from the exact cache."""
    flights: list[Flight] = []
    try:
        return await _complete(call, flights)
    finally:
        for flight in flights:  # after exact.put, so followers find the answer
            await flight.release()


@dataclass
class _Admitted:
    """A miss that may go upstream: its plan, cache key and budget reservation."""

    plan: Plan
    digest: str
    may_write: bool
    admission: Any


async def _first_look(call: GatewayCall, p: Plan, catalogue: Catalogue,
                      ) -> tuple[bool, bool, str, GatewayResponse | None]:
    """Request limits, then one look in the cache tiers: (may_read, may_write, digest, hit).
    Shared by the synchronous paths and deferred (batch) items, so all read the same tiers."""
    check_request_limits(call, p)
    may_read, may_write = cache_allowed(call)
    digest = cache_digest(call, p) if (may_read or may_write) else ""
    cached = await _lookup_caches(call, p, catalogue, digest) if may_read else None
    return may_read, may_write, digest, cached


async def _cached_or_admit(call: GatewayCall, catalogue: Catalogue, flights: list[Flight],
                           ) -> GatewayResponse | _Admitted:
    """Plan, check limits, try the caches (joining the single flight on a miss), then admit.

    Shared by the plain and the streaming path, so both read the same tiers and deny alike."""
    p: Plan | None = None
    try:
        with _timed(call, "plan"):
            p = await plan(call, catalogue)
        may_read, may_write, digest, cached = await _first_look(call, p, catalogue)
        if cached is not None:
            return cached
        if may_read:
            flight = await join_flight(call.auth.org_id, digest)
            flights.append(flight)
            if not flight.leader:  # the leader has answered and stored it
                cached = await _lookup_caches(call, p, catalogue, digest)
                if cached is not None:
                    return cached
        with _timed(call, "admit"):
            admission = await enforcement.admit(auth=call.auth, chain=p.chain,
                                                input_tokens=p.input_tokens_est,
                                                max_output_tokens=p.max_output_tokens)
        call.unmetered = admission.unmetered
    except AsahiError as err:
        status = "rate_limited" if err.status == 429 else (
            "denied" if err.status in (402, 403) else "client_error")
        if err.status in (403, 429):
            audit_denial(call, err)
        record(call, model=None, p=p, status=status, http_status=err.status, error_code=err.code)
        raise
    return _Admitted(plan=p, digest=digest, may_write=may_write, admission=admission)


async def _complete(call: GatewayCall, flights: list[Flight]) -> GatewayResponse:
    catalogue = await aget_catalogue()
    admitted = await _cached_or_admit(call, catalogue, flights)
    if isinstance(admitted, GatewayResponse):
        return admitted
    p, digest, may_write, admission = (admitted.plan, admitted.digest, admitted.may_write,
                                       admitted.admission)
    try:
        result, model, upstream_ms, notes = await call_upstream(call, p)
        call.timings["upstream"] = upstream_ms
    except AsahiError as err:
        await enforcement.release(admission)
        record(call, model=p.chain[0], p=p, status="error", http_status=err.status,
               error_code=err.code)
        raise
    except BaseException:
        await enforcement.release(admission)
        raise
    cost = pricing.cost_of(model, result.usage)
    with _timed(call, "settle"):
        await enforcement.settle(admission, cost_usd=cost, tokens=result.usage.total_tokens)
    baseline = pricing.baseline_cost(_baseline_model(call, catalogue), result.usage)
    if may_write and result.finish_reason in ("stop", "tool_calls"):
        with _timed(call, "store"):
            await _store(call, digest, _to_cache(result, model, cost))
    reason = p.reason if model is p.chain[0] else (
        f"{p.reason}; fell back to {model.name} after: {'; '.join(notes)}")
    p.reason = reason
    with _timed(call, "ledger"):
        latency = record(call, model=model, p=p, status="ok", http_status=200,
                         usage=result.usage, cost=cost, baseline=baseline,
                         upstream_ms=upstream_ms, response_text=result.content)
    techniques = list(p.techniques)
    if model is not p.chain[0]:
        techniques.append("fallback")
    return GatewayResponse(result=result, model=model, cache_tier=0, similarity=None, cost=cost,
                           baseline_cost=baseline, routing_reason=reason, task_type=p.task_type,
                           techniques=techniques, latency_ms=latency)


# --- Deferred (batch) path -----------------------------------------------------------------------

@dataclass
class Deferred:
    """A miss that will be answered later (a provider batch or a background worker)."""

    plan: Plan
    digest: str
    may_write: bool


async def prepare_deferred(call: GatewayCall) -> GatewayResponse | Deferred:
    """The front half of the pipeline for a deferred request: plan (routing), request limits and
    the cache tiers. No admission (the batch reserved its worst case when it was created) and no
    single flight (nobody waits on it). A hit is recorded through `record` like any other."""
    catalogue = await aget_catalogue()
    p = await plan(call, catalogue)
    _, may_write, digest, cached = await _first_look(call, p, catalogue)
    if cached is not None:
        return cached
    return Deferred(plan=p, digest=digest, may_write=may_write)


async def store_deferred(call: GatewayCall, *, digest: str, result: ChatResult, model: ModelInfo,
                         cost: Decimal) -> None:
    """Cache a deferred answer (exact tier) as the synchronous path would have."""
    if digest and result.finish_reason in ("stop", "tool_calls"):
        await _store(call, digest, _to_cache(result, model, cost))


def baseline_for(call: GatewayCall, catalogue: Catalogue, usage: Usage) -> Decimal:
    return pricing.baseline_cost(_baseline_model(call, catalogue), usage)


# --- Streaming ------------------------------------------------------------------------------------

@dataclass
class StreamStart:
    """What the view needs before the first byte: headers, and the event iterator.

    Whoever receives it must end it with `aclose()` (idempotent) however the response ends: a
    stream whose events are never iterated (the client left before the body started, the view
    raised) would otherwise hold its budget reservation and single-flight lock until they expire.
    Dropping it unclosed schedules `aclose()` as a last resort."""

    model: ModelInfo
    cache_tier: int
    similarity: float | None
    events: AsyncGenerator[StreamEvent, None]
    # Set for an upstream stream: gives everything back if the relay never started.
    abandon: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        abandon, self.abandon = self.abandon, None
        try:
            if abandon is not None:
                await abandon()
        finally:
            await self.events.aclose()

    def __del__(self) -> None:
        if self.abandon is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop left: the reservation and the lock expire by themselves
            return
        task = loop.create_task(self.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


# Strong references to the closes scheduled by StreamStart.__del__ (the loop keeps weak ones).
_closing: set[asyncio.Task[None]] = set()


@dataclass
class _RelayState:
    """Decides once who ends an upstream stream: the relay (it started) or the abandon path."""

    claimed: bool = False


async def _replay(result: ChatResult) -> AsyncGenerator[StreamEvent, None]:
    """A cached answer (exact or semantic) as the stream the client asked for."""
    if result.content:
        step = 64
        for i in range(0, len(result.content), step):
            yield StreamEvent(type="delta", text=result.content[i:i + step])
    for idx, c in enumerate(result.tool_calls):
        yield StreamEvent(type="tool_call_delta", tool_index=idx, tool_call_id=c.id,
                          tool_name=c.name, arguments_delta=c.arguments)
    yield StreamEvent(type="finish", finish_reason=result.finish_reason)
    yield StreamEvent(type="usage", usage=result.usage)


def replay(resp: GatewayResponse) -> StreamStart:
    """A finished answer (a cache hit, or tier 3's) for a client that asked for a stream."""
    return StreamStart(model=resp.model, cache_tier=resp.cache_tier, similarity=resp.similarity,
                       events=_replay(resp.result))


async def start_stream(call: GatewayCall) -> StreamStart:
    """Everything up to the upstream's first event; failures here become normal HTTP errors, and a
    model that fails before its first byte falls back to the next one. A cached answer (exact or
    semantic) replays as a stream; a single-flight leader's flight ends with its stream."""
    flights: list[Flight] = []
    try:
        start = await _start_stream(call, flights)
    except BaseException:
        for flight in flights:
            await flight.release()
        raise
    if start.cache_tier:
        for flight in flights:
            await flight.release()
    return start


async def _start_stream(call: GatewayCall, flights: list[Flight]) -> StreamStart:
    catalogue = await aget_catalogue()
    admitted = await _cached_or_admit(call, catalogue, flights)
    if isinstance(admitted, GatewayResponse):
        return replay(admitted)
    p, digest, may_write, admission = (admitted.plan, admitted.digest, admitted.may_write,
                                       admitted.admission)

    notes: list[str] = []
    last: ProviderError | None = None
    breaker = enforcement.breaker()
    for model in p.chain:
        name = f"{model.provider}:{model.name}"
        if not await breaker.allow(name):
            notes.append(f"{model.name}: circuit open")
            continue
        req = _upstream_request(call, model, output_cap(call, model))
        t0 = time.perf_counter()
        try:
            stream = await _adapter(model).stream(req)
            first = await stream.__anext__()
        except StopAsyncIteration:
            first = None
        except ProviderError as exc:
            last = exc
            if exc.kind != "bad_request":
                await breaker.record_failure(name)
            notes.append(f"{model.name}: {exc.kind}")
            if exc.kind in ("bad_request", "auth"):
                break
            continue
        except BaseException:
            # Cancelled (the client left) or broken while waiting for the first event; the
            # stream closed itself. Shielded: a second cancellation must not skip the release.
            await asyncio.shield(enforcement.release(admission))
            raise
        if model is not p.chain[0]:
            p.reason = f"{p.reason}; fell back to {model.name} after: {'; '.join(notes)}"
            p.techniques.append("fallback")
        state = _RelayState()
        events = _relay(call, p, catalogue, model, stream, first, admission, t0,
                        digest if may_write else "", flights, state)
        return StreamStart(model=model, cache_tier=0, similarity=None, events=events,
                           abandon=_abandoner(call, p, model, stream, admission, flights, state))
    await enforcement.release(admission)
    failure = upstream_error(last, notes)
    record(call, model=p.chain[0], p=p, status="error", http_status=failure.status,
           error_code=failure.code)
    raise failure


def _abandoner(call: GatewayCall, p: Plan, model: ModelInfo, stream: Any, admission: Any,
               flights: list[Flight], state: _RelayState) -> Callable[[], Awaitable[None]]:
    """What ends a stream nobody read: nothing was sent, so nothing is charged."""

    async def abandon() -> None:
        if state.claimed:  # the relay started and settles in its own `finally`
            return
        state.claimed = True
        try:
            await stream.aclose()
        finally:
            await asyncio.shield(_give_back(admission, flights))
            record(call, model=model, p=p, status="cancelled", http_status=499,
                   error_code="client_disconnected")

    return abandon


async def _give_back(admission: Any, flights: list[Flight]) -> None:
    try:
        await enforcement.release(admission)
    finally:
        for flight in flights:
            await flight.release()


async def _relay(call: GatewayCall, p: Plan, catalogue: Catalogue, model: ModelInfo, stream: Any,
                 first: StreamEvent | None, admission: Any, t0: float, digest: str,
                 flights: list[Flight], state: _RelayState) -> AsyncGenerator[StreamEvent, None]:
    """Pass events through; settle what was used however the stream ends (done, broken, cancelled),
    store a complete answer in both cache tiers, then end the single flight."""
    if state.claimed:  # abandoned before it started: already given back
        return
    state.claimed = True
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = None
    status, http_status, code = "ok", 200, ""
    usage: Usage | None = None
    try:
        pending = [first] if first is not None else []
        while True:
            if pending:
                event = pending.pop()
            else:
                try:
                    event = await stream.__anext__()
                except StopAsyncIteration:
                    break
            if event.type == "delta":
                text.append(event.text)
            elif event.type == "tool_call_delta":
                c = calls.setdefault(event.tool_index, {"id": "", "name": "", "arguments": ""})
                c["id"] = event.tool_call_id or c["id"]
                c["name"] = event.tool_name or c["name"]
                c["arguments"] += event.arguments_delta
            elif event.type == "finish":
                finish = event.finish_reason
            elif event.type == "usage" and event.usage is not None:
                usage = event.usage
            yield event
    except ProviderError as exc:
        status, http_status, code = "error", 502, f"upstream_{exc.kind}"
        await enforcement.breaker().record_failure(f"{model.provider}:{model.name}")
        raise
    except (asyncio.CancelledError, GeneratorExit):
        status, http_status, code = "cancelled", 499, "client_disconnected"
        raise
    finally:
        try:
            await stream.aclose()
        finally:
            if usage is None:
                # A cut or cancelled stream: charge what was produced, from the text seen so far.
                partial = stream.usage if getattr(stream, "usage", None) else Usage()
                usage = Usage(
                    input_tokens=partial.input_tokens or p.input_tokens_est,
                    output_tokens=max(partial.output_tokens,
                                      pricing.estimate_tokens(sum(map(len, text)), 0) - 8),
                )
            cost = pricing.cost_of(model, usage)
            await asyncio.shield(enforcement.settle(admission, cost_usd=cost,
                                                    tokens=usage.total_tokens))
            result = ChatResult(content="".join(text) or None,
                                tool_calls=[ToolCall(**c) for c in calls.values()],
                                finish_reason=finish or "stop", usage=usage, model=model.name,
                                raw_id="")
            try:
                if status == "ok" and digest and finish in ("stop", "tool_calls"):
                    await _store(call, digest, _to_cache(result, model, cost))
            finally:
                for flight in flights:  # after the store, so followers find the answer
                    await flight.release()
            record(call, model=model, p=p, status=status, http_status=http_status, usage=usage,
                   cost=cost, baseline=pricing.baseline_cost(_baseline_model(call, catalogue),
                                                             usage),
                   error_code=code, upstream_ms=_ms(t0), response_text=result.content)
