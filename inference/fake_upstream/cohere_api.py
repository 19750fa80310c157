"""Cohere v2 wire protocol: ``/v2/chat`` (JSON + SSE stream events) and ``/v2/embed``."""

from __future__ import annotations

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


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"message": message})


def _pick_tool(body: dict[str, Any], prompt: str, want_tool: bool) -> dict[str, Any] | None:
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    messages = body.get("messages") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    choice = body.get("tool_choice")
    if choice == "NONE":
        return None
    named = next((t for t in tools if t["name"] in prompt), None)
    if choice == "REQUIRED" or want_tool or named:
        return named or tools[0]
    return None


async def chat(request: web.Request) -> web.StreamResponse:
    start = await start_chat(request, error_body, invalid="invalid request")
    if not isinstance(start, ChatStart):
        return start
    state, body, messages = start.state, start.body, start.messages
    prompt, d = start.prompt, start.directives
    answer = reply_text(messages, prompt, words=d.answer_words)
    answer, truncated = truncate_to_tokens(answer, body.get("max_tokens"))
    finish = "MAX_TOKENS" if truncated else "COMPLETE"
    for s in body.get("stop_sequences") or []:
        if s and s in answer:
            answer, finish = answer[: answer.index(s)], "STOP_SEQUENCE"
            break
    tool = _pick_tool(body, prompt, d.want_tool)
    call = function_call(tool, prompt) if tool is not None else None
    if call is not None:
        finish = "TOOL_CALL"
    in_tokens = sum(count_tokens(content_text(m.get("content"))) for m in messages)
    out_tokens = count_tokens(call["function"]["arguments"] if call else answer)
    usage = {
        "billed_units": {"input_tokens": in_tokens, "output_tokens": out_tokens},
        "tokens": {"input_tokens": in_tokens + 5, "output_tokens": out_tokens},
        "cached_tokens": 0,
    }
    rid = prefix_key(orjson.dumps(messages))
    message: dict[str, Any] = {"role": "assistant"}
    if call:
        message["tool_plan"] = "I will use a tool."
        message["tool_calls"] = [call]
    else:
        message["content"] = [{"type": "text", "text": answer}]
    payload = {"id": rid, "finish_reason": finish, "message": message, "usage": usage}
    if body.get("stream"):
        return await _stream(
            request, state, d.chunk_ms, d.fail, payload, answer, call
        )
    cut = interrupted_json(state, request, d, orjson.dumps(payload))
    if cut is not None:
        return await cut
    return json_response(payload)


async def _stream(request, state, chunk_ms, fail, payload, answer, call) -> web.StreamResponse:
    w = SSEWriter(state, request, chunk_ms, fail=fail)
    cut = w.interrupts
    await w.start()

    async def ev(data: dict[str, Any], pace: bool = False) -> None:
        await w.send(data, event=data["type"], pace=pace)

    await ev(
        {
            "type": "message-start",
            "id": payload["id"],
            "delta": {
                "message": {
                    "role": "assistant",
                    "content": [],
                    "tool_plan": "",
                    "tool_calls": [],
                    "citations": [],
                }
            },
        }
    )
    if call:
        await ev(
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will use a tool."}}}
        )
        fn = call["function"]
        await ev(
            {
                "type": "tool-call-start",
                "index": 0,
                "delta": {
                    "message": {
                        "tool_calls": {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    }
                },
            }
        )
        args = fn["arguments"]
        for i in range(0, len(args), 8):
            await ev(
                {
                    "type": "tool-call-delta",
                    "index": 0,
                    "delta": {
                        "message": {"tool_calls": {"function": {"arguments": args[i : i + 8]}}}
                    },
                },
                True,
            )
        await ev({"type": "tool-call-end", "index": 0})
    else:
        await ev(
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            }
        )
        parts = split_chunks(answer)
        for i, part in enumerate(parts):
            if cut and i >= max(1, len(parts) // 2):
                return await w.cut()
            await ev(
                {
                    "type": "content-delta",
                    "index": 0,
                    "delta": {"message": {"content": {"text": part}}},
                },
                True,
            )
        await ev({"type": "content-end", "index": 0})
    if cut:
        return await w.cut()
    await ev(
        {
            "type": "message-end",
            "delta": {"finish_reason": payload["finish_reason"], "usage": payload["usage"]},
        }
    )
    return await w.finish()


async def embed(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await read_json(request)
    if body is None or "model" not in body:
        return web.Response(
            body=error_body(400, "invalid request"), status=400, content_type="application/json"
        )
    model = str(body["model"])
    texts = [str(t) for t in body.get("texts") or []]
    d, fault = await admit(
        state, request, model=model, prompt=texts[-1] if texts else "", error_body=error_body
    )
    if fault is not None:
        return fault
    dims = int(body.get("output_dimension") or state.config.embed_dims)
    vectors = [embed_text(t, dims) for t in texts]
    tokens = sum(count_tokens(t) for t in texts)
    payload = {
        "id": prefix_key(orjson.dumps(texts)),
        "response_type": "embeddings_by_type",
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
    }
    if d.fail == "stream_cut":
        return await cut_json(request, orjson.dumps(payload))
    return json_response(payload)


def register(app: web.Application) -> None:
    app.router.add_post("/v2/chat", chat)
    app.router.add_post("/v2/embed", embed)
