"""Anthropic wire protocol: ``/v1/messages`` (JSON + the real SSE event sequence).

Prompt caching is simulated: every block carrying ``cache_control`` is a breakpoint; the longest
breakpoint prefix seen before is reported as ``cache_read_input_tokens`` and the rest of the prompt
up to the last breakpoint as ``cache_creation_input_tokens`` (only prefixes of >= 1024 tokens).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from .behaviour import (
    count_tokens,
    make_answer,
    prefix_key,
    sample_arguments,
    split_chunks,
    truncate_to_tokens,
)
from .server import (
    MIN_CACHEABLE_TOKENS,
    STATE,
    FakeState,
    SSEWriter,
    admit,
    interrupted_json,
    json_response,
    read_json,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
}


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        }
    )


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        inner = block.get("content")
        return inner if isinstance(inner, str) else " ".join(_block_text(b) for b in _blocks(inner))
    return orjson.dumps({k: v for k, v in block.items() if k != "cache_control"}).decode()


def cache_usage(state: FakeState, body: dict[str, Any]) -> tuple[int, int, int]:
    """(uncached input tokens, cache read tokens, cache creation tokens) of a request."""
    ordered: list[dict[str, Any]] = list(body.get("tools") or [])
    ordered += _blocks(body.get("system"))
    for msg in body.get("messages") or []:
        ordered += _blocks(msg.get("content"))
    running = hashlib.blake2b(str(body.get("model")).encode(), digest_size=16)
    total = 0
    breakpoints: list[tuple[int, str]] = []
    for block in ordered:
        text = (
            _block_text(block)
            if "type" in block
            else orjson.dumps({k: v for k, v in block.items() if k != "cache_control"}).decode()
        )
        total += count_tokens(text)
        running.update(text.encode())
        if block.get("cache_control"):
            breakpoints.append((total, running.hexdigest()))
    read = max((cum for cum, key in breakpoints if key in state.seen_prefixes), default=0)
    eligible = [(cum, key) for cum, key in breakpoints if cum >= MIN_CACHEABLE_TOKENS]
    creation = max(0, eligible[-1][0] - read) if eligible else 0
    for _cum, key in eligible:
        state.remember_prefix(key)
    return total - read - creation, read, creation


def _pick_tool(body: dict[str, Any], prompt: str, want_tool: bool) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if "input_schema" in t]
    messages = body.get("messages") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    if any(b.get("type") == "tool_result" for b in _blocks(messages[-1].get("content"))):
        return None
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    named = next((t for t in tools if t["name"] in prompt), None)
    if choice.get("type") == "any" or want_tool or named:
        return named or tools[0]
    return None


async def messages_handler(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await read_json(request)
    if body is None or "model" not in body or not isinstance(body.get("messages"), list):
        return web.Response(
            body=error_body(400, "invalid body"), status=400, content_type="application/json"
        )
    if not isinstance(body.get("max_tokens"), int):
        return web.Response(
            body=error_body(400, "max_tokens: Field required"),
            status=400,
            content_type="application/json",
        )
    model = str(body["model"])
    messages = body["messages"]
    last = messages[-1] if messages else {}
    last_blocks = _blocks(last.get("content"))
    prompt = "\n".join(b.get("text", "") for b in last_blocks if b.get("type") == "text")
    d, fault = await admit(
        state,
        request,
        model=model,
        prompt=prompt,
        error_body=error_body,
        stream=bool(body.get("stream")),
    )
    if fault is not None:
        return fault

    results = [b for b in last_blocks if b.get("type") == "tool_result"]
    if results:
        answer = f"Tool said: {_block_text(results[-1])[:80]}"
    else:
        answer = make_answer(prompt, words=d.answer_words)
    answer, truncated = truncate_to_tokens(answer, body["max_tokens"])
    stop_reason, stop_seq = ("max_tokens" if truncated else "end_turn"), None
    for s in body.get("stop_sequences") or []:
        if s and s in answer:
            answer, stop_reason, stop_seq = answer[: answer.index(s)], "stop_sequence", s
            break
    content: list[dict[str, Any]] = [{"type": "text", "text": answer}]
    tool = _pick_tool(body, prompt, d.want_tool)
    if tool is not None:
        content = [
            {"type": "text", "text": "I will use a tool."},
            {
                "type": "tool_use",
                "id": f"toolu_{prefix_key(prompt.encode())[:16]}",
                "name": tool["name"],
                "input": sample_arguments(tool.get("input_schema") or {}, prompt),
            },
        ]
        stop_reason, stop_seq = "tool_use", None
    uncached, read, creation = cache_usage(state, body)
    out_tokens = sum(
        count_tokens(_block_text(b) if b["type"] == "text" else orjson.dumps(b["input"]).decode())
        for b in content
    )
    usage = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "output_tokens": out_tokens,
    }
    mid = f"msg_{prefix_key(orjson.dumps(messages))[:24]}"
    message = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_seq,
        "usage": usage,
    }
    if body.get("stream"):
        return await _stream(request, state, d.chunk_ms, d.fail, message)
    cut = interrupted_json(state, request, d, orjson.dumps(message))
    if cut is not None:
        return await cut
    return json_response(message, headers={"request-id": f"req_{mid[4:]}"})


async def _stream(
    request, state, chunk_ms: int, fail: str | None, message: dict[str, Any]
) -> web.StreamResponse:
    w = SSEWriter(state, request, chunk_ms, fail=fail)
    cut = w.interrupts
    await w.start({"request-id": f"req_{message['id'][4:]}"})
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    await w.send(
        {
            "type": "message_start",
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
        event="message_start",
    )
    await w.send({"type": "ping"}, event="ping")
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            await w.send(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
                event="content_block_start",
            )
            parts = split_chunks(block["text"])
            for i, part in enumerate(parts):
                if cut and i >= max(1, len(parts) // 2):
                    return await w.cut()
                await w.send(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": part},
                    },
                    event="content_block_delta",
                    pace=True,
                )
        else:
            await w.send(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
                event="content_block_start",
            )
            args = orjson.dumps(block["input"]).decode()
            for i in range(0, len(args), 8):
                await w.send(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": args[i : i + 8]},
                    },
                    event="content_block_delta",
                    pace=True,
                )
        await w.send({"type": "content_block_stop", "index": index}, event="content_block_stop")
    if cut:
        return await w.cut()
    await w.send(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message["stop_reason"],
                "stop_sequence": message["stop_sequence"],
            },
            "usage": usage,
        },
        event="message_delta",
    )
    await w.send({"type": "message_stop"}, event="message_stop")
    return await w.finish()


def register(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages_handler)
