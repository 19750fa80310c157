"""Circuit breaker per (provider, model) with its state in Redis, shared by all processes.

closed --(``failure_threshold`` failures within ``window_s``)--> open --(``cooldown_s``)-->
half_open (at most ``max_probes`` requests in flight) --success--> closed / --failure--> open.

Hot-path trade-off: each process caches the last state it saw for ``cache_s`` (default 1 s).
While the cache says *closed*, ``allow`` and ``record_success`` cost no round trip; the price is
that a process may keep sending for up to ``cache_s`` after another process opened the circuit.
Failures always go to Redis (they are what opens the circuit), and half-open probing is never
cached so the probe limit is exact.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from .errors import unavailable_guard
from .keys import breaker_keys
from .scripts import lua_source

BreakerState = Literal["closed", "open", "half_open"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def circuit_name(*, provider: str, model: str) -> str:
    return f"{provider}/{model}"


@dataclass(frozen=True, slots=True)
class _Seen:
    state: BreakerState
    at: float  # time.monotonic() when read
    open_until: float  # monotonic deadline of the open state (0 when not open)


class CircuitBreaker:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        failure_threshold: int = 5,
        window_s: float = 30.0,
        cooldown_s: float = 30.0,
        max_probes: int = 1,
        probe_timeout_s: float = 30.0,
        success_threshold: int = 1,
        cache_s: float = 1.0,
        op_timeout_s: float = 0.5,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(lua_source("breaker"))
        self._conf = [
            failure_threshold,
            int(window_s * 1000),
            int(cooldown_s * 1000),
            max_probes,
            int(probe_timeout_s * 1000),
            success_threshold,
        ]
        self.cache_s = cache_s
        self.op_timeout_s = op_timeout_s
        self._seen: dict[str, _Seen] = {}

    def _cached(self, name: str) -> _Seen | None:
        seen = self._seen.get(name)
        if seen is None or time.monotonic() - seen.at >= self.cache_s:
            return None
        return seen

    async def _call(self, op: str, name: str) -> tuple[bool, BreakerState]:
        h, f = breaker_keys(name=name)
        async with unavailable_guard(self.op_timeout_s):
            allowed, state, wait_ms = await self._script(
                keys=[h, f], args=[op, *self._conf, uuid.uuid4().hex]
            )
        st: BreakerState = _text(state)  # type: ignore[assignment]
        now = time.monotonic()
        self._seen[name] = _Seen(st, now, now + int(wait_ms) / 1000 if st == "open" else 0.0)
        return bool(allowed), st

    async def allow(self, name: str) -> bool:
        """May a request go to this circuit now? In half-open state this takes a probe slot."""
        seen = self._cached(name)
        if seen is not None:
            if seen.state == "closed":
                return True
            if seen.state == "open" and time.monotonic() < seen.open_until:
                return False
        allowed, _ = await self._call("allow", name)
        return allowed

    async def record_success(self, name: str) -> None:
        seen = self._cached(name)
        if seen is not None and seen.state == "closed":
            return  # success never changes a closed circuit: skip the round trip
        await self._call("success", name)

    async def record_failure(self, name: str) -> None:
        await self._call("failure", name)

    async def states(self, names: Iterable[str]) -> dict[str, BreakerState]:
        """Current state of many circuits in one round trip (a pipeline; names have different
        hash tags so this is not one script). An open circuit whose cool-down has passed reports
        ``half_open``: the next ``allow`` will let a probe through."""
        names = list(names)
        async with unavailable_guard(self.op_timeout_s):
            pipe = self._redis.pipeline(transaction=False)
            pipe.time()
            for n in names:
                pipe.hmget(breaker_keys(name=n)[0], "s", "u")
            res = await pipe.execute()
        secs, micros = res[0]
        server_ms = secs * 1000 + micros // 1000
        out: dict[str, BreakerState] = {}
        mono = time.monotonic()
        for n, (raw_state, raw_until) in zip(names, res[1:], strict=True):
            state: BreakerState = raw_state.decode() if raw_state else "closed"  # type: ignore[assignment]
            until = int(raw_until) if raw_until else 0
            if state == "open" and server_ms >= until:
                state = "half_open"
            out[n] = state
            if state != "half_open":
                open_until = mono + (until - server_ms) / 1000 if state == "open" else 0.0
                self._seen[n] = _Seen(state, mono, open_until)
        return out

    def forget_cache(self) -> None:
        self._seen.clear()
