"""The adapter interface and the stream wrapper every adapter returns."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol, runtime_checkable

from .errors import ProviderError
from .types import ChatRequest, ChatResult, EmbeddingResult, StreamEvent, Usage


class ChatStream:
    """An open upstream stream: ``async for event in stream``.

    ``usage`` holds what the provider has reported so far (final once a ``usage`` event arrived);
    ``aclose()`` (or leaving ``async with``) closes the upstream HTTP response, so a client that
    disconnects cancels the upstream generation.
    """

    def __init__(
        self,
        events: AsyncGenerator[StreamEvent, None],
        *,
        usage: Usage,
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self._events = events
        self._close = close
        self._closed = False
        self.usage = usage
        self.output_chars = 0  # answer text seen so far, for estimating a cut stream's cost

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            event = await self._events.__anext__()
        except BaseException:
            await self.aclose()
            raise
        if event.type == "delta":
            self.output_chars += len(event.text)
        return event

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._events.aclose()
        finally:
            await self._close()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@runtime_checkable
class ProviderAdapter(Protocol):
    kind: str

    async def chat(self, req: ChatRequest) -> ChatResult: ...

    async def stream(self, req: ChatRequest) -> ChatStream: ...

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult: ...

    async def aclose(self) -> None: ...


def no_embeddings(kind: str) -> ProviderError:
    return ProviderError(f"{kind} has no embeddings endpoint", kind="bad_request", provider=kind)
