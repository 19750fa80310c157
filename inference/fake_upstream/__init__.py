"""A fake LLM upstream speaking the OpenAI, Anthropic and Cohere wire protocols.

``start_fake_upstream()`` runs it in a background thread (tests, benchmarks);
``python -m inference.fake_upstream`` or ``manage.py fake_upstream`` run it in the foreground.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .server import STATE, FakeConfig, FakeStats, build_app

__all__ = ["FakeConfig", "FakeUpstream", "run_forever", "start_fake_upstream"]


@dataclass
class FakeUpstream:
    """Handle on a running fake upstream."""

    host: str
    port: int
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _runner: web.AppRunner = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ``openai.AsyncOpenAI(base_url=...)`` and OpenAI-compatible clients."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``anthropic.AsyncAnthropic(base_url=...)`` (the SDK appends ``/v1/messages``)."""
        return self.base_url

    @property
    def cohere_base_url(self) -> str:
        """For ``cohere.AsyncClientV2(base_url=...)`` (the SDK appends ``v2/chat``)."""
        return self.base_url

    @property
    def config(self) -> FakeConfig:
        return self._runner.app[STATE].config

    def _call(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn(self._runner.app[STATE])

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def stats(self) -> dict[str, Any]:
        """Same content as ``GET /__stats``."""
        return self._call(lambda state: state.stats.as_json())

    def batches(self) -> list[dict[str, Any]]:
        """The provider batches created so far: id, kind ("openai" | "anthropic"), metadata."""
        from .batch_api import STORE

        store = self._runner.app[STORE]

        def read(_state: Any) -> list[dict[str, Any]]:  # on the server's loop, like stats()
            return [{"id": b.id, "kind": b.kind, "metadata": dict(b.metadata),
                     "lines": len(b.lines)} for b in store.batches.values()]

        return list(self._call(read))

    def reset(self) -> None:
        def clear(state: Any) -> None:
            state.stats = FakeStats()
            state.seen_prefixes.clear()

        self._call(clear)

    def stop(self) -> None:
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # handler_cancellation: a client that goes away cancels its handler, like a real server.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None and isinstance(server, asyncio.base_events.Server)
    return runner, server.sockets[0].getsockname()[1]


def start_fake_upstream(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    fail_rate: float = 0.0,
    *,
    timeout_sleep_s: float = 30.0,
    seed: int | None = None,
    batch_delay_s: float = 0.0,
) -> FakeUpstream:
    """Start the fake upstream on its own event loop in a daemon thread; port 0 picks a free one."""
    config = FakeConfig(
        latency_ms=latency_ms, fail_rate=fail_rate, timeout_sleep_s=timeout_sleep_s, seed=seed,
        batch_delay_s=batch_delay_s,
    )
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["result"] = loop.run_until_complete(_start(build_app(config), host, port))
        except BaseException as exc:  # surfaced to the caller below
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=main, name="fake-upstream", daemon=True)
    thread.start()
    started.wait(timeout=10)
    if "error" in ready:
        raise ready["error"]
    runner, bound_port = ready["result"]
    return FakeUpstream(host=host, port=bound_port, _loop=loop, _thread=thread, _runner=runner)


def run_forever(
    *, host: str = "127.0.0.1", port: int = 9100, latency_ms: float = 0.0, fail_rate: float = 0.0,
    batch_delay_s: float = 0.0,
) -> None:
    """Serve in the foreground until interrupted."""
    config = FakeConfig(latency_ms=latency_ms, fail_rate=fail_rate, batch_delay_s=batch_delay_s)
    web.run_app(
        build_app(config),
        host=host,
        port=port,
        handler_cancellation=True,
        access_log=None,
        print=lambda msg: print(f"fake upstream: {msg}", flush=True),
    )
