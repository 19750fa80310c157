"""Inference HTTP surface: /v1/chat/completions, /infer, /v1/models, /models, /v1/embeddings, /feedback.

These are plain async Django views (no DRF request cycle) because they are the hot path; they validate
at the edge with precise messages, authenticate from the per-process key cache, and share the one error
shape. Their OpenAPI descriptions are added by `inference.schema`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from asahi_project.client_ip import client_ip
from asahi_project.errors import (
    AsahiError,
    AuthenticationFailed,
    InvalidRequest,
    PermissionDenied,
    error_body,
    error_response,
    to_asahi_error,
)
from asahi_project.request_id import current_request_id
from asahi_project.textrules import header_safe
from governance.auth import bearer_token
from governance.selectors import authenticate_cached, authenticate_key
from governance.types import AuthContext
from inference import pipeline
from inference.ledger import AuditRow, ledger
from inference.providers.errors import ProviderError
from inference.providers.openai_format import usage_to_openai
from inference.providers.types import ChatMessage, ChatRequest, StreamEvent
from inference.selectors import aget_catalogue
from inference.services import chat_call, routing_options
from inference.validation import (
    cache_mode,
    parse_json,
    validate_embeddings_body,
    validate_infer_body,
)

CACHE_NAMES = {0: "miss", 1: "exact", 2: "semantic", 3: "intermediate"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(data), status=status, content_type="application/json")
    for k, v in (headers or {}).items():
        response[k] = v
    return response


async def authenticate(request: HttpRequest, *scopes: str) -> AuthContext:
    header = request.headers.get("Authorization", "")
    try:
        token = bearer_token(header) if header else None
        if token is None:
            raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'"
                                       if not header else
                                       "Authorization header must be 'Bearer <api key>'")
        ctx = authenticate_cached(token)  # no I/O
        if ctx is None:
            ctx = await sync_to_async(authenticate_key, thread_sensitive=False)(token)
    except AuthenticationFailed as err:
        shown = token[:14] if header and token and token.startswith("ask_") else "(none)"
        ledger.audit(AuditRow(action="auth_failure", actor="anonymous", organization_id=None,
                              ip=client_ip(request), request_id=current_request_id(),
                              details={"reason": err.message, "key_prefix": shown,
                                       "path": request.path}))
        raise
    if ctx.frozen:
        raise PermissionDenied("this API key is frozen after a spend anomaly; an admin can "
                               "unfreeze it", code="key_frozen")
    if scopes and not ctx.has_scope(*scopes):
        raise PermissionDenied(f"this API key lacks the scope; needs one of: "
                               f"{', '.join((*scopes, 'all'))}", code="insufficient_scope")
    return ctx


def endpoint(*methods: str) -> Callable[[Callable[..., Awaitable[HttpResponseBase]]], Any]:
    """Method check and error mapping for the async views."""

    def wrap(view: Callable[..., Awaitable[HttpResponseBase]]) -> Any:
        async def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return error_response(AsahiError(f"method {request.method} not allowed; use "
                                                 f"{', '.join(methods)}", status=405,
                                                 code="method_not_allowed"))
            try:
                return await view(request, *args, **kwargs)
            except AsahiError as err:
                return error_response(err)
            except (OperationalError, InterfaceError) as exc:  # PostgreSQL unreachable: a 503
                unavailable = to_asahi_error(exc)
                assert unavailable is not None
                return error_response(unavailable)

        inner.__name__ = view.__name__
        inner.__doc__ = view.__doc__
        return csrf_exempt(inner)

    return wrap


def _headers(call: pipeline.GatewayCall, *, model: str, tier: int, similarity: float | None,
             cost: Any | None) -> dict[str, str]:
    headers = {"X-Asahi-Cache": CACHE_NAMES[tier], "X-Asahi-Model": model}
    if cost is not None:
        headers["X-Asahi-Cost-USD"] = f"{cost:.9f}"
    if similarity is not None:
        headers["X-Asahi-Cache-Similarity"] = f"{similarity:.4f}"
    if call.semantic_reason and tier in (0, 2):
        headers["X-Asahi-Cache-Reason"] = header_safe(call.semantic_reason)
    if call.unmetered:  # served while Redis was down under a fail-open policy
        headers["X-Asahi-Unmetered"] = "true"
    if call.timings:  # W3C Server-Timing: browsers' devtools and bench_gateway read it
        headers["Server-Timing"] = ", ".join(f"{name};dur={ms:.3f}"
                                             for name, ms in call.timings.items())
    return headers


@endpoint("POST")
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    auth = await authenticate(request, "infer")
    body = parse_json(request.body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    call = chat_call(auth=auth, body=body, request=request)
    if call.document_id:
        return await _document_chat(call)
    if call.chat.stream:
        return await _stream_response(call, await pipeline.start_stream(call))
    return _chat_json(call, await pipeline.complete(call))


def _chat_json(call: pipeline.GatewayCall, resp: pipeline.GatewayResponse) -> HttpResponse:
    from inference.providers.openai_format import result_to_openai

    data = result_to_openai(resp.result, model=resp.model.name)
    data["id"] = data["id"] or f"chatcmpl-{uuid.uuid4().hex[:24]}"
    return _json(data, headers=_headers(call, model=resp.model.name, tier=resp.cache_tier,
                                        similarity=resp.similarity, cost=resp.cost))


async def _document_chat(call: pipeline.GatewayCall) -> HttpResponseBase:
    """Tier 3 through the OpenAI-compatible endpoint: one question about one document, as with
    ``/infer``. Its steps are plain upstream calls, so a streaming client gets the answer replayed
    as a stream once it is ready."""
    from caching.intermediate import infer_with_document

    turns = [m for m in call.chat.messages if m.role not in ("system", "developer")]
    if len(turns) != 1 or turns[0].role != "user" or call.chat.tools:
        raise InvalidRequest("document_id needs one user message (system messages aside) and no "
                             "tools: the question and the document between <document> and "
                             "</document>", param="document_id")
    stream, call.chat.stream = call.chat.stream, False
    resp = await infer_with_document(call)
    if stream:
        return await _stream_response(call, pipeline.replay(resp))
    return _chat_json(call, resp)


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _stream_response(call: pipeline.GatewayCall, start: pipeline.StreamStart,
                           ) -> HttpResponseBase:
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = start.model.name

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": finish}]})

    async def body() -> AsyncIterator[bytes]:
        events: AsyncIterator[StreamEvent] = start.events
        try:
            yield chunk({"role": "assistant", "content": ""})
            async for ev in events:
                if ev.type == "delta" and ev.text:
                    yield chunk({"content": ev.text})
                elif ev.type == "tool_call_delta":
                    call_delta: dict[str, Any] = {"index": ev.tool_index,
                                                  "function": {"arguments": ev.arguments_delta}}
                    if ev.tool_call_id:
                        call_delta["id"] = ev.tool_call_id
                        call_delta["type"] = "function"
                    if ev.tool_name:
                        call_delta["function"]["name"] = ev.tool_name
                    yield chunk({"tool_calls": [call_delta]})
                elif ev.type == "finish":
                    yield chunk({}, ev.finish_reason)
                elif ev.type == "usage" and ev.usage is not None and call.include_usage:
                    yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                                "model": model, "choices": [], "usage": usage_to_openai(ev.usage)})
        except ProviderError as exc:
            # Never a clean end after a broken upstream: an explicit error event, and no [DONE].
            yield _sse(error_body(status=502, message=f"upstream stream broke: {exc.message}",
                                  type_="api_error", code=f"upstream_{exc.kind}"))
            return
        finally:
            # Closed after the role chunk, before the first event: give back the reservation
            # and the single-flight lock now; mid-stream: settle now, not when collected.
            await start.aclose()
        yield b"data: [DONE]\n\n"

    try:
        response = StreamingHttpResponse(body(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        for k, v in _headers(call, model=model, tier=start.cache_tier, similarity=start.similarity,
                             cost=0 if start.cache_tier else None).items():
            response[k] = v
    except BaseException:
        await start.aclose()
        raise
    return response


@endpoint("POST")
async def infer(request: HttpRequest) -> HttpResponse:
    """The native API (seed contract): prompt in, answer plus cost, savings, cache tier and reason."""
    auth = await authenticate(request, "infer")
    body = parse_json(request.body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    validate_infer_body(body, max_prompt_chars=settings.ASAHI_MAX_PROMPT_CHARS)
    prompt = body["prompt"]
    if body.get("organization_id") and body["organization_id"] != str(auth.org_id):
        raise PermissionDenied("organization_id does not match the API key's organization",
                               code="organization_forbidden")
    messages = [ChatMessage(role="user", content=prompt)]
    if body.get("system"):
        messages.insert(0, ChatMessage(role="system", content=body["system"]))
    mode = body.get("routing_mode") or ("explicit" if body.get("model_override") else "autopilot")
    if mode == "explicit" and not body.get("model_override"):
        raise InvalidRequest("routing_mode explicit requires model_override", param="model_override")
    chat = ChatRequest(model=body.get("model_override") or "auto", messages=messages,
                       max_tokens=body.get("max_tokens"), temperature=body.get("temperature"),
                       user=body.get("user_id"))
    routing = routing_options(body)
    routing.mode = mode
    if routing.latency_budget_ms is None and mode != "explicit":
        routing.latency_budget_ms = None
    call = pipeline.GatewayCall(
        auth=auth, request_id=current_request_id(), endpoint="infer", chat=chat, routing=routing,
        cache_mode=cache_mode(body, request.headers.get("Cache-Control", "")),
        document_id=body.get("document_id"),
        client_ip=client_ip(request),
    )
    if call.document_id:
        from caching.intermediate import infer_with_document

        resp = await infer_with_document(call)
    else:
        resp = await pipeline.complete(call)
    cost = float(resp.cost)
    original = float(resp.baseline_cost)
    savings = round(100.0 * (original - cost) / original, 2) if original > 0 else 0.0
    data = {
        "request_id": call.request_id,
        "response": resp.result.content or "",
        "model_used": resp.model.name,
        "tokens_input": resp.result.usage.input_tokens,
        "tokens_output": resp.result.usage.output_tokens,
        "cost": cost,
        "latency_ms": round(resp.latency_ms, 3),
        "cache_hit": resp.cache_tier > 0,
        "cache_tier": resp.cache_tier,
        "routing_reason": resp.routing_reason,
        "cost_original": original,
        "cost_savings_percent": savings,
        "optimization_techniques": resp.techniques,
        "task_type": resp.task_type,
        # Why the semantic tier served or refused a stored answer (X-Asahi-Cache-Reason).
        "cache_reason": call.semantic_reason if resp.cache_tier in (0, 2) else "",
    }
    return _json(data, headers=_headers(call, model=resp.model.name, tier=resp.cache_tier,
                                        similarity=resp.similarity, cost=resp.cost))


@endpoint("GET")
async def v1_models(request: HttpRequest) -> HttpResponse:
    await authenticate(request)
    catalogue = await aget_catalogue()
    data = [{"id": m.name, "object": "model", "created": 0, "owned_by": m.provider}
            for m in sorted(catalogue.models.values(), key=lambda m: m.name)]
    data.append({"id": "auto", "object": "model", "created": 0, "owned_by": "asahi"})
    return _json({"object": "list", "data": data})


@endpoint("GET")
async def models(request: HttpRequest) -> HttpResponse:
    await authenticate(request)
    catalogue = await aget_catalogue()
    return _json({"models": [{
        "name": m.name, "provider": m.provider, "kind": m.kind,
        "input_price_per_m": float(m.input_price_per_m),
        "output_price_per_m": float(m.output_price_per_m),
        "cached_input_price_per_m": float(m.cached_input_price_per_m)
        if m.cached_input_price_per_m is not None else None,
        "cache_write_price_per_m": float(m.cache_write_price_per_m)
        if m.cache_write_price_per_m is not None else None,
        "context_window": m.context_window, "max_output_tokens": m.max_output_tokens,
        "typical_latency_ms": m.typical_latency_ms, "quality": m.quality,
    } for m in sorted(catalogue.models.values(), key=lambda m: m.name)]})


@endpoint("POST")
async def embeddings(request: HttpRequest) -> HttpResponse:
    """OpenAI-compatible embeddings, passed through to the provider and cached exactly (tier 1)."""
    from inference.embeddings import create_embeddings

    auth = await authenticate(request, "infer")
    body = parse_json(request.body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    validate_embeddings_body(body)
    data, headers = await create_embeddings(
        auth=auth, body=body, request_id=current_request_id(),
        cache=cache_mode(body, request.headers.get("Cache-Control", "")))
    return _json(data, headers=headers)


@endpoint("POST")
async def feedback(request: HttpRequest) -> HttpResponse:
    auth = await authenticate(request, "infer")
    body = parse_json(request.body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    from inference.services import feedback_create

    fb = await sync_to_async(feedback_create, thread_sensitive=False)(auth=auth, body=body)
    return _json({"id": fb.pk, "request_id": fb.request_id, "model": fb.model,
                  "rating": fb.rating, "task_type": fb.task_type}, status=201)
