"""The fake upstream's aiohttp application, shared state and statistics.

Speaks OpenAI, Anthropic and Cohere wire protocols (see the ``openai_api``, ``anthropic_api`` and
``cohere_api`` modules) so the real SDKs can be exercised over HTTP with no internet access.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .behaviour import Directives, content_text, parse_directives

# Anthropic's minimum cacheable prefix; also used for the simulated OpenAI automatic cache.
MIN_CACHEABLE_TOKENS = 1024


@dataclass(slots=True)
class FakeConfig:
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    # How long a ``timeout`` fault stalls before answering 504 (clients time out first).
    timeout_sleep_s: float = 30.0
    embed_dims: int = 256
    seed: int | None = None
    # Seconds from a batch's creation until it reports completion (OpenAI and Anthropic batches).
    batch_delay_s: float = 0.0


@dataclass
class FakeStats:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    disconnects: int = 0
    streams_started: int = 0
    streams_completed: int = 0

    def as_json(self) -> dict[str, Any]:
        by_path: Counter[str] = Counter()
        by_model: Counter[str] = Counter()
        nested: dict[str, dict[str, int]] = {}
        for (path, model), n in self.requests.items():
            by_path[path] += n
            by_model[model] += n
            nested.setdefault(path, {})[model] = n
        return {
            "total": sum(self.requests.values()),
            "by_path": dict(by_path),
            "by_model": dict(by_model),
            "requests": nested,
            "faults": dict(self.faults),
            "disconnects": self.disconnects,
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
        }


class FakeState:
    """Configuration, statistics and simulated provider caches of one fake upstream."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.stats = FakeStats()
        self.rng = random.Random(config.seed)
        # Prefix hashes already "cached" (Anthropic explicit / OpenAI automatic simulation).
        self.seen_prefixes: set[str] = set()

    def begin(self, request: web.Request, *, model: str, prompt: str) -> Directives:
        """Count the request and work out which behaviour it asked for."""
        self.stats.requests[(request.path, model)] += 1
        d = parse_directives(prompt, header=request.headers.get("X-Fake-Fail"), model=model)
        if (
            d.fail is None
            and self.config.fail_rate > 0
            and self.rng.random() < self.config.fail_rate
        ):
            d = Directives(
                fail=self.rng.choice(("429", "500")),
                answer_words=d.answer_words,
                chunk_ms=d.chunk_ms,
                want_tool=d.want_tool,
            )
        if d.fail:
            self.stats.faults[d.fail] += 1
        return d

    async def delay(self) -> None:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    def remember_prefix(self, key: str) -> bool:
        """Record a prefix; True when it had been seen before (a cache hit)."""
        if key in self.seen_prefixes:
            return True
        if len(self.seen_prefixes) > 100_000:  # bound memory in long benchmark runs
            self.seen_prefixes.clear()
        self.seen_prefixes.add(key)
        return False


STATE: web.AppKey[FakeState] = web.AppKey("fake_state", FakeState)

ErrorBody = Callable[[int, str], bytes]


def json_response(payload: Any, *, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


async def read_json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


BROKEN_JSON = b'{"id": "broken", "choices": ['
SHAPELESS_JSON = b'{"id": "broken", "unexpected": true}'


async def fault_response(
    state: FakeState, request: web.Request, kind: str, error_body: ErrorBody, *, stream: bool
) -> web.StreamResponse | None:
    """The response for a fault, or None when the handler must produce it itself (stream cuts,
    stalls, and a stream's malformed event, which come half-way through the answer)."""
    if kind == "429":
        return web.Response(
            body=error_body(429, "Rate limit exceeded (fake)"),
            status=429,
            content_type="application/json",
            headers={"Retry-After": "2", "retry-after-ms": "1500"},
        )
    if kind == "500":
        return web.Response(
            body=error_body(500, "Internal error (fake)"),
            status=500,
            content_type="application/json",
        )
    if kind == "timeout":
        await asyncio.sleep(state.config.timeout_sleep_s)
        return web.Response(
            body=error_body(504, "Gateway timeout (fake)"),
            status=504,
            content_type="application/json",
        )
    if kind == "malformed" and not stream:
        return web.Response(body=BROKEN_JSON, content_type="application/json")
    if kind == "bad_shape" and not stream:
        return web.Response(body=SHAPELESS_JSON, content_type="application/json")
    if kind == "bad_shape":
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        for _ in range(3):
            await resp.write(b"data: " + SHAPELESS_JSON + b"\n\n")
        await resp.write_eof()
        return resp
    return None


# Faults that break a response off half-way: ``stream_cut`` drops the connection at once,
# ``stall`` goes silent (for ``timeout_sleep_s``, clients time out first) and then drops it;
# in a stream, ``malformed`` sends an event that is not JSON and ends the stream there.
INTERRUPTS = ("stream_cut", "stall")
STREAM_INTERRUPTS = (*INTERRUPTS, "malformed")


async def cut_json(
    request: web.Request, payload: bytes, *, stall_s: float = 0.0
) -> web.StreamResponse:
    """Announce the full body length, send half of it, stall ``stall_s``, drop the connection."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(payload)
    await resp.prepare(request)
    await resp.write(payload[: len(payload) // 2])
    if stall_s:
        await asyncio.sleep(stall_s)
    if request.transport is not None:
        request.transport.close()
    return resp


class SSEWriter:
    """Writes server-sent events and counts client disconnects."""

    def __init__(
        self, state: FakeState, request: web.Request, chunk_ms: int, *, fail: str | None = None
    ) -> None:
        self.state = state
        self.request = request
        self.chunk_s = chunk_ms / 1000
        # ``stream_cut``, ``stall`` or ``malformed``: the handler breaks the stream off half-way
        # with ``cut()``.
        self.interrupts = fail in STREAM_INTERRUPTS
        self.malformed = fail == "malformed"
        self.last_event: str | None = None
        self.stall_s = state.config.timeout_sleep_s if fail == "stall" else 0.0
        self.resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )

    async def start(self, headers: dict[str, str] | None = None) -> None:
        if headers:
            self.resp.headers.update(headers)
        self.state.stats.streams_started += 1
        await self.resp.prepare(self.request)

    async def send(self, data: Any, *, event: str | None = None, pace: bool = False) -> None:
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        head = b"event: " + event.encode() + b"\n" if event else b""
        self.last_event = event
        if pace and self.chunk_s:
            await asyncio.sleep(self.chunk_s)
        await self.resp.write(head + b"data: " + payload + b"\n\n")

    async def cut(self) -> web.StreamResponse:
        """Drop the connection mid-stream, without the protocol's final events (after going
        silent for a while when the fault is a ``stall``)."""
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        if self.malformed:
            # Named like the events before it, so clients that dispatch on the name parse it.
            head = b"event: " + self.last_event.encode() + b"\n" if self.last_event else b""
            await self.resp.write(head + b"data: " + BROKEN_JSON + b"\n\n")
            await self.resp.write_eof()
            return self.resp
        if self.request.transport is not None:
            self.request.transport.close()
        return self.resp

    async def finish(self) -> web.StreamResponse:
        await self.resp.write_eof()
        self.state.stats.streams_completed += 1
        return self.resp


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def disconnect_counter(request: web.Request, handler: Handler) -> web.StreamResponse:
    # aiohttp cancels the handler when the client goes away (handler_cancellation=True) or the
    # write fails; either way the upstream call was abandoned by the client.
    try:
        return await handler(request)
    except (asyncio.CancelledError, ConnectionResetError):
        request.app[STATE].stats.disconnects += 1
        raise


async def stats_handler(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].stats.as_json())


async def reset_handler(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats = FakeStats()
    state.seen_prefixes.clear()
    return json_response({"ok": True})


def build_app(config: FakeConfig) -> web.Application:
    from . import anthropic_api, batch_api, cohere_api, openai_api

    app = web.Application(middlewares=[disconnect_counter], client_max_size=64 * 1024 * 1024)
    app[STATE] = FakeState(config)
    app.router.add_get("/__stats", stats_handler)
    app.router.add_post("/__reset", reset_handler)
    openai_api.register(app)
    anthropic_api.register(app)
    cohere_api.register(app)
    batch_api.register(app)
    return app


def interrupted_json(
    state: FakeState, request: web.Request, d: Directives, payload: bytes
) -> Awaitable[web.StreamResponse] | None:
    """The half-sent body of a non-stream answer under ``stream_cut`` or ``stall``, else None."""
    if d.fail not in INTERRUPTS:
        return None
    stall_s = state.config.timeout_sleep_s if d.fail == "stall" else 0.0
    return cut_json(request, payload, stall_s=stall_s)


async def admit(
    state: FakeState,
    request: web.Request,
    *,
    model: str,
    prompt: str,
    error_body: ErrorBody,
    stream: bool = False,
) -> tuple[Directives, web.StreamResponse | None]:
    """Count the request and apply the configured latency and any injected fault: the request's
    directives, and the fault's response when the handler must send that instead (stream cuts
    are left to the handler)."""
    d = state.begin(request, model=model, prompt=prompt)
    await state.delay()
    fault = (
        await fault_response(state, request, d.fail, error_body, stream=stream) if d.fail else None
    )
    return d, fault


@dataclass
class ChatStart:
    """A validated chat request that has been counted, delayed and passed the fault check."""

    state: FakeState
    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    prompt: str
    directives: Directives


async def start_chat(request: web.Request, error_body: Callable[[int, str], bytes],
                     *, invalid: str) -> ChatStart | web.StreamResponse:
    """The prologue OpenAI- and Cohere-shaped chat endpoints share: validate the body, take the last
    user message as the prompt, count the request, apply latency and injected faults."""
    state = request.app[STATE]
    body = await read_json(request)
    if body is None or "model" not in body or not isinstance(body.get("messages"), list):
        return web.Response(body=error_body(400, invalid), status=400,
                            content_type="application/json")
    model = str(body["model"])
    messages = body["messages"]
    last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    prompt = content_text(last_user.get("content"))
    d, fault = await admit(state, request, model=model, prompt=prompt, error_body=error_body,
                           stream=bool(body.get("stream")))
    if fault is not None:
        return fault
    return ChatStart(state=state, body=body, model=model, messages=messages, prompt=prompt,
                     directives=d)
