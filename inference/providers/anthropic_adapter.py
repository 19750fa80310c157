"""Anthropic through the official ``anthropic`` SDK (Messages API)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

import anthropic
import httpx2
import orjson

from .anthropic_format import finish_from_anthropic, request_to_anthropic, result_from_anthropic
from .base import ChatStream, no_embeddings
from .errors import ProviderError
from .sdk_errors import map_stainless_error
from .types import ChatRequest, ChatResult, EmbeddingResult, StreamEvent, Usage


class AnthropicAdapter:
    kind = "anthropic"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        transport: Literal["aiohttp", "httpx"] = "aiohttp",
        auto_cache: bool = True,
    ) -> None:
        self.auto_cache = auto_cache
        timeout = httpx2.Timeout(timeout_s, connect=connect_timeout_s)
        if transport == "aiohttp":
            # The anthropic SDK ships no aiohttp transport of its own; reuse the one vendored in
            # the openai SDK (both are httpx2-based Stainless clients).
            import openai

            http_client: httpx2.AsyncClient = openai.DefaultAioHttpClient(timeout=timeout)
        else:
            http_client = anthropic.DefaultAsyncHttpxClient(timeout=timeout)
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )

    def _error(self, exc: BaseException, *, mid_stream: bool = False) -> ProviderError:
        return map_stainless_error(exc, anthropic, provider=self.kind, mid_stream=mid_stream)

    async def chat(self, req: ChatRequest) -> ChatResult:
        kwargs = request_to_anthropic(req, auto_cache=self.auto_cache)
        try:
            raw = await self.client.messages.with_raw_response.create(**kwargs)
            data = orjson.loads(raw.http_response.content)
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
        return result_from_anthropic(data)

    async def stream(self, req: ChatRequest) -> ChatStream:
        kwargs = request_to_anthropic(req, auto_cache=self.auto_cache)
        try:
            sdk_stream = await self.client.messages.create(**kwargs, stream=True)
        except Exception as exc:
            raise self._error(exc) from exc
        usage = Usage()
        return ChatStream(self._events(sdk_stream, usage), usage=usage, close=sdk_stream.close)

    async def _events(self, sdk_stream: Any, usage: Usage) -> AsyncGenerator[StreamEvent, None]:
        raw_usage: dict[str, int] = {}
        tool_index: dict[int, int] = {}  # Anthropic block index -> our tool-call index
        stopped = False

        def update_usage(u: Any) -> None:
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ):
                value = getattr(u, name, None)
                if value is not None:
                    raw_usage[name] = int(value)
            usage.cached_input_tokens = raw_usage.get("cache_read_input_tokens", 0)
            usage.cache_write_tokens = raw_usage.get("cache_creation_input_tokens", 0)
            usage.input_tokens = (
                raw_usage.get("input_tokens", 0)
                + usage.cached_input_tokens
                + usage.cache_write_tokens
            )
            usage.output_tokens = raw_usage.get("output_tokens", 0)

        try:
            async for event in sdk_stream:
                etype = event.type
                if etype == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        yield StreamEvent(type="delta", text=delta.text)
                    elif delta.type == "input_json_delta" and event.index in tool_index:
                        yield StreamEvent(
                            type="tool_call_delta",
                            tool_index=tool_index[event.index],
                            arguments_delta=delta.partial_json,
                        )
                elif etype == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        tool_index[event.index] = len(tool_index)
                        yield StreamEvent(
                            type="tool_call_delta",
                            tool_index=tool_index[event.index],
                            tool_call_id=block.id,
                            tool_name=block.name,
                        )
                elif etype == "message_start":
                    update_usage(event.message.usage)
                elif etype == "message_delta":
                    update_usage(event.usage)
                    yield StreamEvent(
                        type="finish", finish_reason=finish_from_anthropic(event.delta.stop_reason)
                    )
                elif etype == "message_stop":
                    stopped = True
                    yield StreamEvent(
                        type="usage",
                        usage=Usage(
                            input_tokens=usage.input_tokens,
                            cached_input_tokens=usage.cached_input_tokens,
                            cache_write_tokens=usage.cache_write_tokens,
                            output_tokens=usage.output_tokens,
                        ),
                    )
        except Exception as exc:
            raise self._error(exc, mid_stream=True) from exc
        if not stopped:
            raise ProviderError(
                "stream ended before message_stop",
                kind="stream_broken",
                retryable=True,
                provider=self.kind,
            )

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        raise no_embeddings(self.kind)

    async def aclose(self) -> None:
        await self.client.close()
