"""Event-loop lag monitor: one small task per web process's loop measures how late a timer fires.

Anything that blocks the loop (synchronous I/O, CPU-heavy work, a long GC pause) delays every
request on that process by the same amount; the lag is that delay, as a histogram
(`asahi_event_loop_lag_seconds`) and the largest over the last few seconds
(`asahi_event_loop_lag_max_seconds`). Sampling every 0.2 s costs a few microseconds of CPU a
second. Started lazily by the ASGI entry point on the first request of each loop, so it also runs
under servers without an ASGI lifespan.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections import deque
from typing import Any

from analytics.metrics import GC_PAUSE, LOOP_LAG, LOOP_LAG_MAX

INTERVAL_SECONDS = 0.2
WINDOW_SECONDS = 5.0

_started: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
# The loop keeps only weak references to its tasks.
_tasks: set[asyncio.Task[None]] = set()


def ensure_started() -> None:
    """Start the monitor on the running loop, once (a set lookup when it runs already)."""
    loop = asyncio.get_running_loop()
    if loop in _started:
        return
    _started.add(loop)
    task = loop.create_task(monitor(), name="asahi-loop-lag")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def monitor(*, interval: float = INTERVAL_SECONDS, window: float = WINDOW_SECONDS) -> None:
    loop = asyncio.get_running_loop()
    recent: deque[tuple[float, float]] = deque()
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        now = loop.time()
        lag = max(0.0, now - before - interval)
        LOOP_LAG.observe(lag)
        recent.append((now, lag))
        while recent[0][0] < now - window:
            recent.popleft()
        LOOP_LAG_MAX.set(max(value for _, value in recent))


_gc_started: list[float] = []


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    # Runs inside the collector: no allocation-heavy work here.
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        GC_PAUSE.labels(generation=str(info["generation"])).observe(
            time.perf_counter() - _gc_started.pop())


def watch_gc_pauses() -> None:
    """Record every collection's pause in ``asahi_gc_pause_seconds`` (once per process)."""
    if _gc_callback not in gc.callbacks:
        gc.callbacks.append(_gc_callback)
