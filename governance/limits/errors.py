"""The one exception callers handle: Redis is unreachable, apply the organization's policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class LimitsUnavailable(Exception):
    """Redis could not answer in time. The caller fails closed (deny) or open (allow, unmetered)
    according to the organization's ``redis_failure_mode``."""


# Errors meaning "the server is not usable now"; script bugs (ResponseError) stay loud.
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    OSError,
    TimeoutError,
)


@asynccontextmanager
async def unavailable_guard(timeout_s: float) -> AsyncIterator[None]:
    """Bound an operation by ``timeout_s`` whatever the client's socket settings and translate
    connection-level failures into :class:`LimitsUnavailable`."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except _UNAVAILABLE as exc:
        raise LimitsUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}") from exc
