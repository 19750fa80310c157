"""Cohere through the official ``cohere`` SDK (v2 chat and embed)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import cohere
from cohere.core.api_error import ApiError

from .base import ChatStream
from .errors import ProviderError, from_status
from .sdk_errors import map_transport_error
from .types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    FinishReason,
    NamedToolChoice,
    StreamEvent,
    ToolCall,
    Usage,
)

FINISH: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}


def _message_to_cohere(m: ChatMessage) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.text()}
    role = "system" if m.role == "developer" else m.role
    out: dict[str, Any] = {"role": role}
    if isinstance(m.content, list) and role == "user":
        out["content"] = [
            {"type": "image_url", "image_url": {"url": p.image_url}}
            if p.type == "image_url"
            else {"type": "text", "text": p.text}
            for p in m.content
        ]
    elif m.content is not None:
        out["content"] = m.text()
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    return out


def request_to_cohere(req: ChatRequest) -> dict[str, Any]:
    """Keyword arguments for ``AsyncClientV2.chat`` / ``chat_stream``."""
    kwargs: dict[str, Any] = {
        "model": req.model,
        "messages": [_message_to_cohere(m) for m in req.messages],
    }
    tools = req.tools or []
    if isinstance(req.tool_choice, NamedToolChoice):
        # Cohere cannot name a tool: offer only that one and require a call.
        tools = [t for t in tools if t.name == req.tool_choice.name]
        kwargs["tool_choice"] = "REQUIRED"
    elif req.tool_choice in ("required", "none"):
        kwargs["tool_choice"] = req.tool_choice.upper()
    if tools:
        kwargs["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in tools
        ]
    if req.temperature is not None:
        kwargs["temperature"] = req.temperature
    if req.top_p is not None:
        kwargs["p"] = req.top_p
    if req.max_tokens is not None:
        kwargs["max_tokens"] = req.max_tokens
    if req.stop:
        kwargs["stop_sequences"] = req.stop
    fmt = req.response_format or {}
    if fmt.get("type") == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        kwargs["response_format"] = {
            "type": "json_object",
            "json_schema": (fmt.get("json_schema") or {}).get("schema", {}),
        }
    if req.extra:
        kwargs["request_options"] = {"additional_body_parameters": req.extra}
    return kwargs


def usage_from_cohere(u: Any) -> Usage:
    """Billed units are what Cohere charges; raw token counts are the fallback."""
    if u is None:
        return Usage()
    counts = (
        u.billed_units
        if u.billed_units is not None and u.billed_units.input_tokens is not None
        else u.tokens
    )
    inp = int((counts.input_tokens if counts else 0) or 0)
    out = int((counts.output_tokens if counts else 0) or 0)
    return Usage(input_tokens=inp, cached_input_tokens=int(u.cached_tokens or 0), output_tokens=out)


def _finish(reason: str | None, provider: str) -> FinishReason:
    if reason in ("ERROR", "TIMEOUT"):
        raise ProviderError(
            f"generation ended with {reason}",
            kind="server" if reason == "ERROR" else "timeout",
            retryable=True,
            provider=provider,
        )
    return FINISH.get(reason or "COMPLETE", "stop")


class CohereAdapter:
    kind = "cohere"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        embed_input_type: str = "clustering",
    ) -> None:
        # The SDK reads CO_API_URL at import time; read it here so later changes are honoured.
        base_url = base_url or os.environ.get("CO_API_URL") or "https://api.cohere.com"
        self.embed_input_type = embed_input_type
        self.client = cohere.AsyncClientV2(
            api_key=api_key or os.environ.get("COHERE_API_KEY") or os.environ.get("CO_API_KEY"),
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
        )

    def _error(self, exc: BaseException, *, mid_stream: bool = False) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, ApiError):
            status = exc.status_code or 0
            if 200 <= status < 300:
                # The SDK raises ApiError(200) when the body is not valid JSON.
                return ProviderError(
                    f"invalid response body: {exc.body!r:.200}",
                    kind="malformed",
                    status=status,
                    retryable=True,
                    provider=self.kind,
                )
            return from_status(
                status,
                f"cohere error {status}: {exc.body!r:.200}",
                headers=exc.headers or {},
                provider=self.kind,
            )
        mapped = map_transport_error(exc, provider=self.kind, mid_stream=mid_stream)
        if mapped is not None:
            return mapped
        return ProviderError(
            f"unexpected upstream failure: {exc!r}", kind="server", provider=self.kind
        )

    async def chat(self, req: ChatRequest) -> ChatResult:
        try:
            resp = await self.client.chat(**request_to_cohere(req))
        except Exception as exc:
            raise self._error(exc) from exc
        try:
            msg = resp.message
            texts = [
                getattr(item, "text", "")
                for item in msg.content or []
                if getattr(item, "type", "") == "text"
            ]
            calls = [
                ToolCall(
                    id=c.id or "",
                    name=c.function.name or "",
                    arguments=c.function.arguments or "{}",
                )
                for c in msg.tool_calls or []
                if c.function is not None
            ]
        except AttributeError as exc:
            raise ProviderError(
                f"unexpected response shape: {exc!r}",
                kind="malformed",
                status=200,
                retryable=True,
                provider=self.kind,
            ) from exc
        return ChatResult(
            content="".join(texts) if texts else None,
            tool_calls=calls,
            finish_reason=_finish(resp.finish_reason, self.kind),
            usage=usage_from_cohere(resp.usage),
            model=req.model,
            raw_id=resp.id,
        )

    async def stream(self, req: ChatRequest) -> ChatStream:
        gen: Any = self.client.chat_stream(**request_to_cohere(req))
        # The SDK sends the request on first iteration: pull the first event now so HTTP errors
        # surface here, before the caller commits to streaming.
        try:
            first = await gen.__anext__()
        except StopAsyncIteration as exc:
            raise ProviderError(
                "empty stream", kind="stream_broken", retryable=True, provider=self.kind
            ) from exc
        except Exception as exc:
            await gen.aclose()
            raise self._error(exc) from exc
        usage = Usage()
        return ChatStream(self._events(first, gen, usage), usage=usage, close=gen.aclose)

    async def _events(
        self, first: Any, gen: AsyncIterator[Any], usage: Usage
    ) -> AsyncGenerator[StreamEvent, None]:
        ended = False

        async def all_events() -> AsyncGenerator[Any, None]:
            yield first
            async for ev in gen:
                yield ev

        try:
            async for ev in all_events():
                etype = getattr(ev, "type", None)
                if etype == "content-delta":
                    text = ev.delta.message.content.text
                    if text:
                        yield StreamEvent(type="delta", text=text)
                elif etype == "tool-call-start":
                    call = ev.delta.message.tool_calls
                    yield StreamEvent(
                        type="tool_call_delta",
                        tool_index=ev.index or 0,
                        tool_call_id=call.id,
                        tool_name=call.function.name,
                        arguments_delta=call.function.arguments or "",
                    )
                elif etype == "tool-call-delta":
                    fn = ev.delta.message.tool_calls.function
                    yield StreamEvent(
                        type="tool_call_delta",
                        tool_index=ev.index or 0,
                        arguments_delta=fn.arguments or "",
                    )
                elif etype == "message-end":
                    ended = True
                    final = usage_from_cohere(ev.delta.usage)
                    usage.input_tokens, usage.output_tokens = (
                        final.input_tokens,
                        final.output_tokens,
                    )
                    usage.cached_input_tokens = final.cached_input_tokens
                    yield StreamEvent(
                        type="finish", finish_reason=_finish(ev.delta.finish_reason, self.kind)
                    )
                    yield StreamEvent(type="usage", usage=final)
        except Exception as exc:
            raise self._error(exc, mid_stream=True) from exc
        if not ended:
            raise ProviderError(
                "stream ended before message-end",
                kind="stream_broken",
                retryable=True,
                provider=self.kind,
            )

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        try:
            resp = await self.client.embed(
                model=model,
                texts=texts,
                input_type=self.embed_input_type,
                embedding_types=["float"],
            )
        except Exception as exc:
            raise self._error(exc) from exc
        vectors = resp.embeddings.float_ if resp.embeddings is not None else None
        if vectors is None:
            raise ProviderError(
                "no float embeddings in response",
                kind="malformed",
                status=200,
                retryable=True,
                provider=self.kind,
            )
        billed = resp.meta.billed_units if resp.meta is not None else None
        tokens = int(billed.input_tokens or 0) if billed is not None else 0
        return EmbeddingResult(vectors=[list(v) for v in vectors], input_tokens=tokens, model=model)

    async def aclose(self) -> None:
        client = getattr(self.client._client_wrapper, "httpx_client", None)
        inner = getattr(client, "httpx_client", None)
        if inner is not None and hasattr(inner, "aclose"):
            await inner.aclose()
