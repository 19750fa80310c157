"""Map exceptions of the official SDKs (and their HTTP layers) to ``ProviderError``."""

from __future__ import annotations

import json
from types import ModuleType

import httpx
import httpx2
import orjson

from .errors import ErrorKind, ProviderError, from_status

_TIMEOUTS = (httpx2.TimeoutException, httpx.TimeoutException, TimeoutError)
_TRANSPORT = (httpx2.TransportError, httpx.TransportError, ConnectionError, OSError)
_DECODE = (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError)


def map_transport_error(
    exc: BaseException, *, provider: str, mid_stream: bool
) -> ProviderError | None:
    """Timeouts, dropped connections and undecodable bodies, whichever SDK raised them."""
    if isinstance(exc, _TIMEOUTS):
        return ProviderError(
            f"upstream timed out: {exc!r}", kind="timeout", retryable=True, provider=provider
        )
    if isinstance(exc, _TRANSPORT):
        kind: ErrorKind = "stream_broken" if mid_stream else "server"
        return ProviderError(
            f"upstream connection failed: {exc!r}", kind=kind, retryable=True, provider=provider
        )
    if isinstance(exc, _DECODE):
        return ProviderError(
            f"upstream sent invalid JSON: {exc!r}",
            kind="malformed",
            status=200,
            retryable=True,
            provider=provider,
        )
    return None


def map_stainless_error(
    exc: BaseException, sdk: ModuleType, *, provider: str, mid_stream: bool = False
) -> ProviderError:
    """For the Stainless-generated SDKs (``openai``, ``anthropic``), which share exception names."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        return from_status(
            exc.status_code, str(exc.message), headers=exc.response.headers, provider=provider
        )
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(str(exc), kind="timeout", retryable=True, provider=provider)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__
        if cause is not None and isinstance(cause, _TIMEOUTS):
            return ProviderError(str(exc), kind="timeout", retryable=True, provider=provider)
        kind: ErrorKind = "stream_broken" if mid_stream else "server"
        return ProviderError(f"{exc} ({cause!r})", kind=kind, retryable=True, provider=provider)
    if isinstance(exc, sdk.APIResponseValidationError):
        return ProviderError(
            str(exc), kind="malformed", status=200, retryable=True, provider=provider
        )
    if isinstance(exc, sdk.APIError):
        # e.g. an ``error`` event inside an SSE stream.
        return ProviderError(
            str(exc),
            kind="stream_broken" if mid_stream else "server",
            retryable=True,
            provider=provider,
        )
    mapped = map_transport_error(exc, provider=provider, mid_stream=mid_stream)
    if mapped is not None:
        return mapped
    return ProviderError(
        f"unexpected upstream failure: {exc!r}", kind="server", retryable=False, provider=provider
    )
