"""Async Redis clients for the hot path (budgets, rate limits, breakers, exact cache).

One client per event loop: redis.asyncio pools are bound to the loop that first used them, and tests or
management commands may run several loops in one process. With REDIS_URL unset (single-process mode) the
client is an in-process fakeredis with Lua, so the same scripts run; state then lives in this process only.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
_fake_server: Any = None


def get_async_redis() -> Any:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _make_client()
        _clients[loop] = client
    return client


def _make_client() -> Any:
    global _fake_server
    if settings.REDIS_URL:
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No client-side retries: an unreachable Redis must surface within the socket timeout so
        # the organization's failure policy applies promptly.
        return aredis.Redis.from_url(
            settings.REDIS_URL,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
            max_connections=256,
            health_check_interval=30,
        )
    import fakeredis

    if _fake_server is None:
        _fake_server = fakeredis.FakeServer()
    return fakeredis.FakeAsyncRedis(server=_fake_server)


def get_sync_redis() -> Any:
    """Synchronous client for management code (stats, invalidation, tests)."""
    if settings.REDIS_URL:
        import redis

        return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                                    socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT)
    import fakeredis

    global _fake_server
    if _fake_server is None:
        _fake_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_fake_server)
