"""Single flight: concurrent identical cache misses in one organization make one upstream call.

    async with single_flight(org_id, digest) as leader:
        if not leader:
            hit = await exact.get(org_id, digest)   # the leader has stored its answer
        ...

The first caller for (organization, digest) becomes the leader and holds a Redis lock
(`SET NX PX`, so it works across processes and hosts); everyone else waits until the leader leaves
its block, bounded by `wait_seconds`, then re-reads the cache. Inside one process followers await an
`asyncio.Future` instead of polling Redis, so N concurrent in-process misses cost one Redis round
trip each, not a poll loop. Followers that time out, or find nothing because the leader failed,
simply go upstream themselves: single flight only ever saves calls, it never fails a request.
A Redis outage makes every caller a leader (no coordination, same as without single flight).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from django.conf import settings

from asahi_project.redis_client import get_async_redis
from caching import keys

logger = logging.getLogger("asahi.cache")

POLL_START_SECONDS = 0.01
POLL_MAX_SECONDS = 0.1
# Compare-and-delete: only the holder's token releases the lock (a slow leader whose lock expired
# must not delete the next leader's lock).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def default_wait_seconds() -> float:
    """How long a follower waits: one full upstream attempt chain, the longest a leader can take."""
    timeout = float(getattr(settings, "ASAHI_UPSTREAM_TIMEOUT", 60.0))
    retries = int(getattr(settings, "ASAHI_UPSTREAM_RETRIES", 0))
    return timeout * (retries + 1) + 1.0


@dataclass
class Flight:
    """One participant. `leader` is True for the caller that should do the work."""

    key: str
    leader: bool
    token: str = ""
    waited_ms: float = 0.0
    timed_out: bool = False
    _local: asyncio.Future[None] | None = field(default=None, repr=False)

    async def release(self) -> None:
        """Leader only: drop the lock and wake the waiters. Idempotent."""
        if not self.leader or self._local is None:
            return
        local, self._local = self._local, None
        flights = _local_flights()
        if flights.get(self.key) is local:
            del flights[self.key]
        if not local.done():
            local.set_result(None)
        if self.token:
            try:
                await get_async_redis().eval(_RELEASE, 1, self.key, self.token)
            except Exception as exc:  # the lock expires by itself (PX)
                logger.warning("singleflight_release_failed", extra={"error": type(exc).__name__})


# In-process flights per event loop (futures belong to the loop that created them).
_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[None]]] = (
    weakref.WeakKeyDictionary()
)


def _local_flights() -> dict[str, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    flights = _per_loop.get(loop)
    if flights is None:
        flights = _per_loop[loop] = {}
    return flights


async def join(org_id: uuid.UUID, digest: str, *, wait_seconds: float | None = None) -> Flight:
    """Become the leader, or wait for the current one (bounded). Followers return with
    `leader=False` once the leader released, or when `wait_seconds` ran out (`timed_out`)."""
    key = keys.singleflight_key(org_id, digest)
    wait = default_wait_seconds() if wait_seconds is None else wait_seconds
    started = time.perf_counter()
    flights = _local_flights()
    local = flights.get(key)
    if local is not None:
        # Someone in this process already leads (or is waiting on another process's leader).
        try:
            await asyncio.wait_for(asyncio.shield(local), timeout=wait)
            timed_out = False
        except TimeoutError:
            timed_out = True
        return Flight(key=key, leader=False, waited_ms=(time.perf_counter() - started) * 1000,
                      timed_out=timed_out)
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    flights[key] = future
    token = secrets.token_hex(8)
    redis = get_async_redis()
    try:
        got = await redis.set(key, token, nx=True, px=max(1, int(wait * 1000)))
    except Exception as exc:
        logger.warning("singleflight_unavailable", extra={"error": type(exc).__name__})
        return Flight(key=key, leader=True, _local=future)
    if got:
        return Flight(key=key, leader=True, token=token, _local=future)
    # Another process leads: poll until its lock is gone. In-process callers wait on our future.
    timed_out = True
    delay = POLL_START_SECONDS
    try:
        while time.perf_counter() - started < wait:
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_SECONDS)
            if not await redis.exists(key):
                timed_out = False
                break
    except Exception as exc:
        logger.warning("singleflight_poll_failed", extra={"error": type(exc).__name__})
    finally:
        if flights.get(key) is future:
            del flights[key]
        if not future.done():
            future.set_result(None)
    return Flight(key=key, leader=False, waited_ms=(time.perf_counter() - started) * 1000,
                  timed_out=timed_out)


@asynccontextmanager
async def single_flight(org_id: uuid.UUID, digest: str, *,
                        wait_seconds: float | None = None) -> AsyncIterator[bool]:
    """`async with single_flight(org, digest) as leader:` — see the module docstring."""
    flight = await join(org_id, digest, wait_seconds=wait_seconds)
    try:
        yield flight.leader
    finally:
        await flight.release()
