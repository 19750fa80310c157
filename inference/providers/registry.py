"""One long-lived adapter per (event loop, kind, base_url, api_key, timeout).

SDK async clients hold connection pools bound to the event loop that first used them, so the cache
is keyed by the running loop: the uvicorn loop, a test's loop and a Celery worker's ``asyncio.run``
each get their own clients, and a closed loop's clients are dropped with it (weak keys).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from .anthropic_adapter import AnthropicAdapter
from .base import ProviderAdapter
from .cohere_adapter import CohereAdapter
from .errors import ProviderError
from .openai_adapter import OpenAIAdapter

KINDS = ("openai", "anthropic", "cohere", "openai-compatible")

_FACTORIES: dict[str, Callable[..., ProviderAdapter]] = {
    "openai": lambda **kw: OpenAIAdapter(kind="openai", **kw),
    "openai-compatible": lambda **kw: OpenAIAdapter(kind="openai-compatible", **kw),
    "anthropic": lambda **kw: AnthropicAdapter(**kw),
    "cohere": lambda **kw: CohereAdapter(**kw),
}

_Key = tuple[str, str | None, str | None, float | None]
_cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, ProviderAdapter]] = (
    weakref.WeakKeyDictionary()
)


def make_adapter(
    kind: str, *, base_url: str | None = None, api_key: str | None = None, **options: Any
) -> ProviderAdapter:
    """A new adapter (not cached). ``None`` base_url/api_key fall back to the SDK's env vars."""
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise ProviderError(
            f"unknown provider kind {kind!r}; expected one of {KINDS}", kind="bad_request"
        )
    if kind == "openai-compatible" and not base_url:
        raise ProviderError(
            "openai-compatible providers need a base_url", kind="bad_request", provider=kind
        )
    try:
        return factory(base_url=base_url or None, api_key=api_key or None, **options)
    except Exception as exc:
        # An SDK that refuses to start (no API key in the catalogue or the environment) is this
        # provider's failure: the chain falls back to the next model instead of a 500.
        raise ProviderError(f"{kind} provider is not usable: {type(exc).__name__}: {exc}",
                            kind="server", provider=kind) from exc


def get_client(
    kind: str,
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    timeout_s: float | None = None,
) -> ProviderAdapter:
    """The cached adapter for this provider on the running event loop (call from async code).

    ``timeout_s`` bounds each wait on the upstream (connecting, the answer, and the gap between two
    bytes of a stream, so a stalled stream ends too); None keeps the adapter's default."""
    loop = asyncio.get_running_loop()
    per_loop = _cache.get(loop)
    if per_loop is None:
        per_loop = _cache[loop] = {}
    key = (kind, base_url or None, api_key or None, timeout_s)
    adapter = per_loop.get(key)
    if adapter is None:
        options = {} if timeout_s is None else {"timeout_s": timeout_s}
        adapter = per_loop[key] = make_adapter(
            kind, base_url=base_url, api_key=api_key, **options
        )
    return adapter


async def aclose_clients() -> None:
    """Close and forget the running loop's adapters (app shutdown, end of a test)."""
    per_loop = _cache.pop(asyncio.get_running_loop(), {})
    for adapter in per_loop.values():
        await adapter.aclose()
