"""Conversions between the internal shapes and OpenAI's chat-completions JSON.

Used by the OpenAI adapter (outgoing) and by the gateway edge, which accepts OpenAI-format requests
(``request_from_openai``) and answers in OpenAI format (``result_to_openai``).
"""

from __future__ import annotations

import time
from typing import Any

from .errors import ProviderError
from .types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    ContentPart,
    FinishReason,
    NamedToolChoice,
    ToolCall,
    ToolSpec,
    Usage,
)

_FINISH: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    None: "stop",
}
_KNOWN_FIELDS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "user",
    "stream",
    "stream_options",
}


def finish_from_openai(reason: str | None) -> FinishReason:
    return _FINISH.get(reason, "stop")


# ---- internal -> OpenAI -------------------------------------------------------------------------


def part_to_openai(part: ContentPart) -> dict[str, Any]:
    if part.type == "image_url":
        return {"type": "image_url", "image_url": {"url": part.image_url or ""}}
    return {"type": "text", "text": part.text}


def message_to_openai(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, list):
        out["content"] = [part_to_openai(p) for p in m.content]
    else:
        out["content"] = m.content
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def tool_to_openai(t: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
    }


def request_to_openai(req: ChatRequest, *, max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """The JSON body (minus ``stream``) for ``POST /chat/completions``."""
    body: dict[str, Any] = {
        "model": req.model,
        "messages": [message_to_openai(m) for m in req.messages],
    }
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    if req.stop:
        body["stop"] = req.stop
    if req.tools:
        body["tools"] = [tool_to_openai(t) for t in req.tools]
    if isinstance(req.tool_choice, NamedToolChoice):
        body["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice.name}}
    elif req.tool_choice is not None:
        body["tool_choice"] = req.tool_choice
    if req.response_format is not None:
        body["response_format"] = req.response_format
    if req.user:
        body["user"] = req.user
    return body


def usage_to_openai(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def result_to_openai(
    r: ChatResult, *, model: str | None = None, created: int | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.content}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in r.tool_calls
        ]
    return {
        "id": r.raw_id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model or r.model,
        "choices": [{"index": 0, "message": message, "finish_reason": r.finish_reason}],
        "usage": usage_to_openai(r.usage),
    }


# ---- OpenAI -> internal -------------------------------------------------------------------------


def _content_from_openai(content: Any) -> str | list[ContentPart] | None:
    if content is None or isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for p in content:
        if p.get("type") == "image_url":
            url = p.get("image_url")
            parts.append(
                ContentPart(
                    type="image_url", image_url=url.get("url") if isinstance(url, dict) else url
                )
            )
        else:
            parts.append(
                ContentPart(
                    type="text", text=str(p.get("text", "")), cache=bool(p.get("cache_control"))
                )
            )
    return parts


def message_from_openai(m: dict[str, Any]) -> ChatMessage:
    calls = [
        ToolCall(
            id=c.get("id", ""),
            name=c["function"]["name"],
            arguments=c["function"].get("arguments") or "{}",
        )
        for c in m.get("tool_calls") or []
    ]
    return ChatMessage(
        role=m["role"],
        content=_content_from_openai(m.get("content")),
        name=m.get("name"),
        tool_calls=calls,
        tool_call_id=m.get("tool_call_id"),
    )


def request_from_openai(body: dict[str, Any]) -> ChatRequest:
    """Parse an OpenAI chat-completions request body; unknown fields go to ``extra``."""
    try:
        tools = [
            ToolSpec(
                name=t["function"]["name"],
                description=t["function"].get("description", ""),
                parameters=t["function"].get("parameters") or {"type": "object", "properties": {}},
            )
            for t in body.get("tools") or []
            if t.get("type", "function") == "function"
        ]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = NamedToolChoice(name=choice["function"]["name"])
        stop = body.get("stop")
        return ChatRequest(
            model=str(body["model"]),
            messages=[message_from_openai(m) for m in body["messages"]],
            temperature=body.get("temperature"),
            top_p=body.get("top_p"),
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            stop=[stop] if isinstance(stop, str) else stop,
            tools=tools or None,
            tool_choice=choice,
            response_format=body.get("response_format"),
            user=body.get("user"),
            stream=bool(body.get("stream")),
            extra={k: v for k, v in body.items() if k not in _KNOWN_FIELDS},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProviderError(f"invalid chat request: {exc!r}", kind="bad_request") from exc


def usage_from_openai(u: dict[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    prompt_details = u.get("prompt_tokens_details") or {}
    completion_details = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def result_from_openai(data: dict[str, Any]) -> ChatResult:
    """Parse a chat.completion response body (first choice)."""
    try:
        choice = data["choices"][0]
        msg = choice["message"]
        calls = [
            ToolCall(
                id=c["id"],
                name=c["function"]["name"],
                arguments=c["function"].get("arguments") or "",
            )
            for c in msg.get("tool_calls") or []
        ]
        return ChatResult(
            content=msg.get("content"),
            tool_calls=calls,
            finish_reason=finish_from_openai(choice.get("finish_reason")),
            usage=usage_from_openai(data.get("usage")),
            model=str(data.get("model", "")),
            raw_id=str(data.get("id", "")),
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ProviderError(
            f"unexpected response shape: {exc!r}", kind="malformed", retryable=True
        ) from exc
