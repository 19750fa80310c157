"""A Redis client tuned for the hot path: short timeouts and no client-side retries, so an outage
surfaces as ``LimitsUnavailable`` within ~timeout instead of after several back-off rounds."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def limits_client(
    *, url: str, timeout_s: float = 0.25, max_connections: int = 64
) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        decode_responses=False,
    )
