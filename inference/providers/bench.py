"""Micro-benchmark: per-request cost of the transports/adapters against the fake upstream.

    python -m inference.providers.bench --requests 2000 --concurrency 1,16

The fake upstream runs in a separate process (so it does not share this process's GIL) at 0 ms
latency; the numbers are therefore client-side cost plus loopback HTTP. ``aiohttp-direct`` (a bare
aiohttp POST + orjson) is the floor the SDK variants are compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .anthropic_adapter import AnthropicAdapter
from .cohere_adapter import CohereAdapter
from .openai_adapter import OpenAIAdapter
from .types import ChatMessage, ChatRequest

PROMPT = "Summarise the benefits of caching LLM responses in two sentences."


@dataclass(slots=True)
class Measurement:
    name: str
    concurrency: int
    p50_ms: float
    p99_ms: float
    rps: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server_process(port: int) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
        [sys.executable, "-m", "inference.fake_upstream", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake upstream did not start")


async def measure(
    name: str, call: Callable[[], Awaitable[object]], *, requests: int, concurrency: int
) -> Measurement:
    for _ in range(min(100, requests)):  # warm connection pools and code paths
        await call()
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Measurement(
        name=name,
        concurrency=concurrency,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        rps=len(latencies) / elapsed,
    )


async def run(
    base: str, *, requests: int, concurrencies: list[int], include_stream: bool
) -> list[Measurement]:
    req = ChatRequest(model="gpt-4o-mini", messages=[ChatMessage(role="user", content=PROMPT)])
    results: list[Measurement] = []
    session = aiohttp.ClientSession()
    payload = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    )

    async def direct() -> object:
        async with session.post(
            f"{base}/v1/chat/completions",
            data=payload,
            headers={"Content-Type": "application/json"},
        ) as resp:
            return orjson.loads(await resp.read())

    adapters: dict[str, Any] = {
        "openai sdk httpx2 (pydantic parse)": OpenAIAdapter(
            base_url=f"{base}/v1", api_key="k", transport="httpx", raw=False
        ),
        "openai sdk httpx2 + raw/orjson": OpenAIAdapter(
            base_url=f"{base}/v1", api_key="k", transport="httpx", raw=True
        ),
        "openai sdk aiohttp (pydantic parse)": OpenAIAdapter(
            base_url=f"{base}/v1", api_key="k", transport="aiohttp", raw=False
        ),
        "openai sdk aiohttp + raw/orjson [default]": OpenAIAdapter(
            base_url=f"{base}/v1", api_key="k"
        ),
        "openai sdk aiohttp, SDK stream objects": OpenAIAdapter(
            base_url=f"{base}/v1", api_key="k", raw_stream=False
        ),
        "anthropic sdk aiohttp + raw/orjson [default]": AnthropicAdapter(
            base_url=base, api_key="k"
        ),
        "anthropic sdk httpx2 + raw/orjson": AnthropicAdapter(
            base_url=base, api_key="k", transport="httpx"
        ),
        "cohere sdk httpx [default]": CohereAdapter(base_url=base, api_key="k"),
    }

    def chat_call(adapter: object) -> Callable[[], Awaitable[object]]:
        return lambda: adapter.chat(req)  # type: ignore[attr-defined]

    def stream_call(adapter: object) -> Callable[[], Awaitable[object]]:
        async def consume() -> object:
            stream = await adapter.stream(req)  # type: ignore[attr-defined]
            return [e async for e in stream]

        return consume

    try:
        for c in concurrencies:
            results.append(
                await measure(
                    "aiohttp direct + orjson (floor)", direct, requests=requests, concurrency=c
                )
            )
            for name, adapter in adapters.items():
                if "SDK stream objects" in name:
                    continue
                results.append(
                    await measure(name, chat_call(adapter), requests=requests, concurrency=c)
                )
            if include_stream:
                for name in (
                    "openai sdk httpx2 + raw/orjson",
                    "openai sdk aiohttp, SDK stream objects",
                    "openai sdk aiohttp + raw/orjson [default]",
                    "anthropic sdk aiohttp + raw/orjson [default]",
                    "cohere sdk httpx [default]",
                ):
                    results.append(
                        await measure(
                            f"STREAM {name.split(' [')[0]}",
                            stream_call(adapters[name]),
                            requests=requests // 2,
                            concurrency=c,
                        )
                    )
    finally:
        await session.close()
        for adapter in adapters.values():
            await adapter.aclose()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument(
        "--base-url", help="use an already running fake upstream instead of starting one"
    )
    parser.add_argument("--no-stream", action="store_true")
    args = parser.parse_args(argv)
    proc = None
    base = args.base_url
    if base is None:
        port = _free_port()
        proc = start_server_process(port)
        base = f"http://127.0.0.1:{port}"
    try:
        results = asyncio.run(
            run(
                base.rstrip("/"),
                requests=args.requests,
                concurrencies=[int(c) for c in args.concurrency.split(",")],
                include_stream=not args.no_stream,
            )
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    floor = {m.concurrency: m.p50_ms for m in results if m.name.startswith("aiohttp direct")}
    print(f"{'variant':48} {'conc':>4} {'p50 ms':>8} {'+floor':>7} {'p99 ms':>8} {'req/s':>8}")
    for m in results:
        print(
            f"{m.name:48} {m.concurrency:>4} {m.p50_ms:8.2f} {m.p50_ms - floor[m.concurrency]:7.2f} "
            f"{m.p99_ms:8.2f} {m.rps:8.0f}"
        )


if __name__ == "__main__":
    main()
