"""OpenAI wire protocol: ``/v1/chat/completions`` (JSON + SSE), ``/v1/embeddings``, ``/v1/models``."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from .behaviour import (
    content_text,
    count_tokens,
    embed_text,
    function_call,
    prefix_key,
    reply_text,
    split_chunks,
    truncate_to_tokens,
)
from .server import (
    MIN_CACHEABLE_TOKENS,
    STATE,
    ChatStart,
    SSEWriter,
    admit,
    cut_json,
    interrupted_json,
    json_response,
    read_json,
    start_chat,
)

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small")
_REASONING_RE = re.compile(r"^o\d|reason")
_ERROR_TYPES = {
    429: "rate_limit_exceeded",
    500: "server_error",
    504: "timeout",
    400: "invalid_request_error",
}


def error_body(status: int, message: str) -> bytes:
    kind = _ERROR_TYPES.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})


def _pick_tool(body: dict[str, Any], prompt: str, want_tool: bool) -> dict[str, Any] | None:
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    messages = body.get("messages") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        return next((t for t in tools if t["name"] == name), tools[0])
    named = next((t for t in tools if t["name"] in prompt), None)
    if choice == "required" or want_tool or named:
        return named or tools[0]
    return None


def _usage(body: dict[str, Any], state: Any, answer: str) -> dict[str, Any]:
    messages = body.get("messages") or []
    prompt_tokens = sum(count_tokens(content_text(m.get("content"))) for m in messages)
    prompt_tokens += count_tokens(orjson.dumps(body["tools"]).decode()) if body.get("tools") else 0
    # Automatic prefix caching as OpenAI does it: prompts >= 1024 tokens, whole 128-token blocks.
    cached = 0
    prefix = messages[:-1]
    prefix_tokens = sum(count_tokens(content_text(m.get("content"))) for m in prefix)
    if prefix and prefix_tokens >= MIN_CACHEABLE_TOKENS:
        key = prefix_key(b"oai" + orjson.dumps([body.get("model"), prefix]))
        if state.remember_prefix(key):
            cached = (prefix_tokens // 128) * 128
    reasoning = 16 if _REASONING_RE.search(str(body.get("model", ""))) else 0
    completion = count_tokens(answer) + reasoning
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    start = await start_chat(request, error_body, invalid="invalid body")
    if not isinstance(start, ChatStart):
        return start
    state, body, model, messages = start.state, start.body, start.model, start.messages
    prompt, d = start.prompt, start.directives

    tool = _pick_tool(body, prompt, d.want_tool)
    answer = reply_text(messages, prompt, words=d.answer_words)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    answer, truncated = truncate_to_tokens(answer, max_tokens)
    stop = body.get("stop")
    for s in [stop] if isinstance(stop, str) else stop or []:
        if s and s in answer:
            answer = answer[: answer.index(s)]
    call = function_call(tool, prompt) if tool is not None else None
    if call is not None:
        answer = ""
    finish = "tool_calls" if call else ("length" if truncated else "stop")
    usage = _usage(body, state, answer + (call["function"]["arguments"] if call else ""))
    rid = f"chatcmpl-{prefix_key(orjson.dumps(messages))[:20]}"
    created = int(time.time())
    headers = {"x-request-id": rid}

    if body.get("stream"):
        return await _stream(
            request, state, d, body, rid, created, model, answer, call, finish, usage
        )

    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer if not call else None,
        "refusal": None,
    }
    if call:
        message["tool_calls"] = [call]
    payload = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
        "system_fingerprint": "fp_fake",
    }
    cut = interrupted_json(state, request, d, orjson.dumps(payload))
    if cut is not None:
        return await cut
    return json_response(payload, headers=headers)


async def _stream(request, state, d, body, rid, created, model, answer, call, finish, usage):
    w = SSEWriter(state, request, d.chunk_ms, fail=d.fail)
    await w.start({"x-request-id": rid})
    base = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }

    await w.send(chunk({"role": "assistant", "content": "", "refusal": None}))
    if call:
        fn = call["function"]
        await w.send(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        args = fn["arguments"]
        pieces = [args[i : i + 8] for i in range(0, len(args), 8)]
        for i, piece in enumerate(pieces):
            if w.interrupts and i >= len(pieces) // 2:
                return await w.cut()
            await w.send(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), pace=True
            )
    else:
        parts = split_chunks(answer)
        for i, part in enumerate(parts):
            if w.interrupts and i >= max(1, len(parts) // 2):
                return await w.cut()
            await w.send(chunk({"content": part}), pace=True)
    if w.interrupts:
        return await w.cut()
    await w.send(chunk({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        await w.send({**base, "choices": [], "usage": usage})
    await w.send(b"[DONE]")
    return await w.finish()


async def embeddings(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await read_json(request)
    if body is None or "input" not in body:
        return web.Response(
            body=error_body(400, "invalid body"), status=400, content_type="application/json"
        )
    model = str(body.get("model", ""))
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    texts = [t if isinstance(t, str) else " ".join(map(str, t)) for t in inputs]
    d, fault = await admit(
        state, request, model=model, prompt=texts[-1] if texts else "", error_body=error_body
    )
    if fault is not None:
        return fault
    dims = int(body.get("dimensions") or state.config.embed_dims)
    data = [
        {"object": "embedding", "index": i, "embedding": embed_text(t, dims)}
        for i, t in enumerate(texts)
    ]
    tokens = sum(count_tokens(t) for t in texts)
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    if d.fail == "stream_cut":
        return await cut_json(request, orjson.dumps(payload))
    return json_response(payload)


async def models(request: web.Request) -> web.Response:
    return json_response(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in MODELS
            ],
        }
    )


def register(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
