"""OpenAI and OpenAI-compatible servers through the official ``openai`` SDK.

Transport choice (measured, see docs/_parts/providers.md): the SDK's aiohttp transport with
``with_raw_response`` (``with_streaming_response`` for streams) and orjson parsing of the body is
the fastest option that keeps the SDK's request building, auth, headers and error classes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from typing import Any, Literal

import httpx2
import openai
import orjson

from .base import ChatStream
from .errors import ProviderError
from .openai_format import (
    finish_from_openai,
    request_to_openai,
    result_from_openai,
    usage_from_openai,
)
from .sdk_errors import map_stainless_error
from .types import ChatRequest, ChatResult, EmbeddingResult, StreamEvent, Usage

Transport = Literal["aiohttp", "httpx"]


class OpenAIAdapter:
    """``kind`` is ``openai`` or ``openai-compatible`` (vLLM, Ollama, LM Studio, Together, ...)."""

    def __init__(
        self,
        *,
        kind: str = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        transport: Transport = "aiohttp",
        raw: bool = True,
        raw_stream: bool = True,
    ) -> None:
        self.kind = kind
        self.raw = raw
        self.raw_stream = raw_stream
        timeout = httpx2.Timeout(timeout_s, connect=connect_timeout_s)
        if transport == "aiohttp":
            http_client: httpx2.AsyncClient = openai.DefaultAioHttpClient(timeout=timeout)
        else:
            http_client = openai.DefaultAsyncHttpxClient(timeout=timeout)
        if api_key is None and kind != "openai":
            # Local OpenAI-compatible servers often need no key, but the SDK insists on one.
            api_key = os.environ.get("OPENAI_API_KEY") or "unused"
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,  # retries and fallback belong to the router
            timeout=timeout,
            http_client=http_client,
        )
        # OpenAI deprecated max_tokens (reasoning models reject it); many compatible servers only
        # know max_tokens.
        self._max_tokens_field = "max_completion_tokens" if kind == "openai" else "max_tokens"

    def _error(self, exc: BaseException, *, mid_stream: bool = False) -> ProviderError:
        return map_stainless_error(exc, openai, provider=self.kind, mid_stream=mid_stream)

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        body = request_to_openai(req, max_tokens_field=self._max_tokens_field)
        if req.extra:
            body["extra_body"] = req.extra
        return body

    async def chat(self, req: ChatRequest) -> ChatResult:
        body = self._body(req)
        try:
            if self.raw:
                raw = await self.client.chat.completions.with_raw_response.create(**body)
                data = orjson.loads(raw.http_response.content)
            else:
                data = (await self.client.chat.completions.create(**body)).model_dump()
        except Exception as exc:
            raise self._error(exc) from exc
        if not isinstance(data, dict):
            raise ProviderError(
                "response is not a JSON object",
                kind="malformed",
                status=200,
                retryable=True,
                provider=self.kind,
            )
        try:
            return result_from_openai(data)
        except ProviderError as exc:
            exc.provider = exc.provider or self.kind  # the parser does not know whose body it was
            raise

    async def stream(self, req: ChatRequest) -> ChatStream:
        body = self._body(req)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        usage = Usage()
        try:
            if self.raw_stream:
                # The SDK builds and sends the request and raises its status errors; we parse the
                # SSE lines with orjson instead of building a pydantic object per chunk.
                manager = self.client.chat.completions.with_streaming_response.create(**body)
                response = await manager.__aenter__()
                http = response.http_response
                return ChatStream(self._raw_events(http, usage), usage=usage, close=http.aclose)
            sdk_stream = await self.client.chat.completions.create(**body)
        except Exception as exc:
            raise self._error(exc) from exc
        return ChatStream(self._events(sdk_stream, usage), usage=usage, close=sdk_stream.close)

    async def _raw_events(
        self, http: httpx2.Response, usage: Usage
    ) -> AsyncGenerator[StreamEvent, None]:
        async def chunks() -> AsyncGenerator[dict[str, Any], None]:
            async for line in http.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = orjson.loads(data)
                if chunk.get("error"):
                    raise ProviderError(
                        f"error event in stream: {chunk['error']!r:.300}",
                        kind="stream_broken",
                        retryable=True,
                        provider=self.kind,
                    )
                yield chunk

        async for event in self._translate(chunks(), usage):
            yield event

    async def _events(self, sdk_stream: Any, usage: Usage) -> AsyncGenerator[StreamEvent, None]:
        async def chunks() -> AsyncGenerator[dict[str, Any], None]:
            async for chunk in sdk_stream:
                yield chunk.model_dump()

        async for event in self._translate(chunks(), usage):
            yield event

    async def _translate(
        self, chunks: AsyncGenerator[dict[str, Any], None], usage: Usage
    ) -> AsyncGenerator[StreamEvent, None]:
        """Chat-completion chunks (as dicts, from either path) to ``StreamEvent``s."""
        finished = False
        try:
            async for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield StreamEvent(type="delta", text=delta["content"])
                    for tc in delta.get("tool_calls") or ():
                        fn = tc.get("function") or {}
                        yield StreamEvent(
                            type="tool_call_delta",
                            tool_index=tc.get("index") or 0,
                            tool_call_id=tc.get("id"),
                            tool_name=fn.get("name"),
                            arguments_delta=fn.get("arguments") or "",
                        )
                    if choice.get("finish_reason") is not None:
                        finished = True
                        yield StreamEvent(
                            type="finish", finish_reason=finish_from_openai(choice["finish_reason"])
                        )
                if chunk.get("usage"):
                    final = usage_from_openai(chunk["usage"])
                    self._set_usage(usage, final)
                    yield StreamEvent(type="usage", usage=final)
        except Exception as exc:
            raise self._error(exc, mid_stream=True) from exc
        if not finished:
            raise ProviderError(
                "stream ended before a finish_reason",
                kind="stream_broken",
                retryable=True,
                provider=self.kind,
            )

    @staticmethod
    def _set_usage(usage: Usage, final: Usage) -> None:
        usage.input_tokens = final.input_tokens
        usage.cached_input_tokens = final.cached_input_tokens
        usage.output_tokens = final.output_tokens
        usage.reasoning_tokens = final.reasoning_tokens

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        try:
            raw = await self.client.embeddings.with_raw_response.create(
                model=model, input=texts, encoding_format="float"
            )
            data = orjson.loads(raw.http_response.content)
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = [row["embedding"] for row in rows]
            tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        except ProviderError:
            raise
        except (KeyError, TypeError) as exc:
            raise ProviderError(
                f"unexpected embeddings shape: {exc!r}",
                kind="malformed",
                status=200,
                retryable=True,
                provider=self.kind,
            ) from exc
        except Exception as exc:
            raise self._error(exc) from exc
        return EmbeddingResult(
            vectors=vectors, input_tokens=tokens, model=str(data.get("model", model))
        )

    async def aclose(self) -> None:
        await self.client.close()
