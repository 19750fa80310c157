"""Tier 1: exact-match cache in Redis, per organization, TTL from the organization's policy."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from asahi_project.redis_client import get_async_redis
from caching import keys

logger = logging.getLogger("asahi.cache")


@dataclass(frozen=True)
class CachedAnswer:
    content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: str
    created: float
    similarity: float | None = None
    source_prompt: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedAnswer:
        data = orjson.loads(raw)
        return cls(**data)


async def get(org_id: uuid.UUID, digest: str) -> CachedAnswer | None:
    """One GET. Redis errors count as a miss, never as a failed request (hits are counted in the
    ledger, so no second round trip here)."""
    redis = get_async_redis()
    try:
        raw = await redis.get(keys.exact_key(org_id, digest))
    except Exception as exc:
        logger.warning("exact_cache_unavailable", extra={"error": type(exc).__name__})
        return None
    if raw is None:
        return None
    try:
        return CachedAnswer.from_bytes(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None


async def put(org_id: uuid.UUID, digest: str, answer: CachedAnswer, ttl_seconds: int) -> None:
    redis = get_async_redis()
    try:
        await redis.set(keys.exact_key(org_id, digest), answer.to_bytes(), ex=max(1, ttl_seconds))
    except Exception as exc:
        logger.warning("exact_cache_store_failed", extra={"error": type(exc).__name__})


def now() -> float:
    return time.time()
