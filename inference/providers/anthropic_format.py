"""Translation between the internal (OpenAI-like) shapes and Anthropic's Messages API.

Also decides automatic prompt-cache breakpoints (``cache_control``) for long stable prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ProviderError
from .types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    ContentPart,
    FinishReason,
    NamedToolChoice,
    ToolCall,
    Usage,
)

DEFAULT_MAX_TOKENS = 4096
MIN_CACHEABLE_TOKENS = 1024  # Anthropic ignores shorter prefixes (2048 on Haiku models)
MAX_BREAKPOINTS = 4
_EPHEMERAL = {"type": "ephemeral"}

STOP_REASONS: dict[str | None, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    None: "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_from_anthropic(reason: str | None) -> FinishReason:
    return STOP_REASONS.get(reason, "stop")


def _part_to_block(part: ContentPart) -> dict[str, Any]:
    if part.type == "image_url":
        url = part.image_url or ""
        if url.startswith("data:") and ";base64," in url:
            media, data = url[5:].split(";base64,", 1)
            block: dict[str, Any] = {
                "type": "image",
                "source": {"type": "base64", "media_type": media, "data": data},
            }
        else:
            block = {"type": "image", "source": {"type": "url", "url": url}}
    else:
        block = {"type": "text", "text": part.text}
    if part.cache:
        block["cache_control"] = dict(_EPHEMERAL)
    return block


def _blocks(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_part_to_block(p) for p in content]


def _tool_use_input(call: ToolCall) -> dict[str, Any]:
    try:
        parsed = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError as exc:
        raise ProviderError(
            f"tool call {call.id} has invalid JSON arguments",
            kind="bad_request",
            provider="anthropic",
        ) from exc
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def messages_to_anthropic(
    messages: list[ChatMessage],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages): system/developer messages become the system prompt, tool results
    become ``tool_result`` blocks of a user turn, and consecutive same-role turns are merged (the
    API wants alternating roles)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "developer"):
            system += _blocks(m.content)
            continue
        if m.role == "tool":
            role = "user"
            blocks: list[dict[str, Any]] = [
                {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.text()}
            ]
        elif m.role == "assistant":
            role = "assistant"
            blocks = _blocks(m.content)
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_use_input(c)}
                for c in m.tool_calls
            ]
        else:
            role = "user"
            blocks = _blocks(m.content)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        return {"type": "tool", "name": choice.name}
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}[choice]


def _format_instruction(fmt: dict[str, Any]) -> str | None:
    # Anthropic has no response_format; ask for JSON in the system prompt instead.
    if fmt.get("type") == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema", {})
        return (
            "Respond with a single JSON object matching this JSON schema and nothing else: "
            + orjson.dumps(schema).decode()
        )
    return None


def request_to_anthropic(req: ChatRequest, *, auto_cache: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``client.messages.create`` (without ``stream``)."""
    system, messages = messages_to_anthropic(req.messages)
    if req.response_format and (instruction := _format_instruction(req.response_format)):
        system.append({"type": "text", "text": instruction})
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters}
        for t in req.tools or []
    ]
    if auto_cache:
        apply_cache_breakpoints(tools=tools, system=system, messages=messages)
    kwargs: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        kwargs["system"] = system
    if tools:
        kwargs["tools"] = tools
    if (choice := _tool_choice(req.tool_choice)) is not None and (
        tools or choice["type"] == "none"
    ):
        kwargs["tool_choice"] = choice
    if req.temperature is not None:
        # OpenAI's range is 0..2, Anthropic's 0..1.
        kwargs["temperature"] = min(req.temperature, 1.0)
    if req.top_p is not None:
        kwargs["top_p"] = req.top_p
    if req.stop:
        kwargs["stop_sequences"] = req.stop
    if req.user:
        kwargs["metadata"] = {"user_id": req.user}
    if req.extra:
        kwargs["extra_body"] = req.extra
    return kwargs


# ---- prompt caching -----------------------------------------------------------------------------


def estimate_tokens(block: dict[str, Any]) -> int:
    """~4 characters per token; good enough to decide whether a prefix clears the minimum."""
    if block.get("type") == "text":
        return len(block.get("text", "")) // 4
    if block.get("type") == "image":
        return 1500  # a typical image costs around this many tokens
    return len(orjson.dumps(block)) // 4


@dataclass(slots=True)
class _Candidate:
    block: dict[str, Any]
    priority: int  # lower is more valuable
    size: int


def apply_cache_breakpoints(
    *,
    tools: list[dict[str, Any]],
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    min_tokens: int = MIN_CACHEABLE_TOKENS,
    max_breakpoints: int = MAX_BREAKPOINTS,
) -> int:
    """Put ``cache_control`` breakpoints on long stable prefixes; returns how many were added.

    Mutates the given (freshly built) structures. Breakpoints the caller set explicitly are kept
    and count against Anthropic's limit of four. Candidates, most valuable first: the end of the
    system prompt and the end of the conversation history (everything before the last turn), then
    long documents (a single block >= ``min_tokens``), then the tool definitions. A breakpoint is
    only placed where the prefix up to it reaches ``min_tokens`` — shorter ones are not cached.
    The last turn's final block is never marked: it is the part that changes between requests.
    """
    every = [*tools, *system, *(b for m in messages for b in m["content"])]
    budget = max_breakpoints - sum(1 for b in every if b.get("cache_control"))
    if budget <= 0:
        return 0
    candidates: list[_Candidate] = []
    total = 0
    for t in tools:
        total += estimate_tokens(t)
    if tools and total >= min_tokens:
        candidates.append(_Candidate(tools[-1], 3, total))
    for b in system:
        total += estimate_tokens(b)
    if system and total >= min_tokens:
        candidates.append(_Candidate(system[-1], 0, total))
    for i, m in enumerate(messages):
        is_last = i == len(messages) - 1
        for j, b in enumerate(m["content"]):
            size = estimate_tokens(b)
            total += size
            final_block = is_last and j == len(m["content"]) - 1
            if (
                size >= min_tokens
                and not final_block
                and b.get("type") in ("text", "image", "tool_result")
            ):
                candidates.append(_Candidate(b, 2, size))
        if i == len(messages) - 2 and total >= min_tokens and m["content"]:
            candidates.append(_Candidate(m["content"][-1], 1, total))
    added = 0
    seen: set[int] = set()
    for c in sorted(candidates, key=lambda c: (c.priority, -c.size)):
        if added >= budget:
            break
        if id(c.block) in seen or c.block.get("cache_control"):
            continue
        seen.add(id(c.block))
        c.block["cache_control"] = dict(_EPHEMERAL)
        added += 1
    return added


# ---- responses ----------------------------------------------------------------------------------


def usage_from_anthropic(u: dict[str, Any] | None) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads/writes; ours is the whole prompt."""
    if not u:
        return Usage()
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0) + read + write,
        cached_input_tokens=read,
        cache_write_tokens=write,
        output_tokens=int(u.get("output_tokens") or 0),
    )


def result_from_anthropic(data: dict[str, Any]) -> ChatResult:
    try:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in data["content"]:
            if block.get("type") == "text":
                texts.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                calls.append(
                    ToolCall(
                        id=block["id"],
                        name=block["name"],
                        arguments=orjson.dumps(block.get("input") or {}).decode(),
                    )
                )
        return ChatResult(
            content="".join(texts) if texts else None,
            tool_calls=calls,
            finish_reason=finish_from_anthropic(data.get("stop_reason")),
            usage=usage_from_anthropic(data.get("usage")),
            model=str(data.get("model", "")),
            raw_id=str(data.get("id", "")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProviderError(
            f"unexpected response shape: {exc!r}",
            kind="malformed",
            status=200,
            retryable=True,
            provider="anthropic",
        ) from exc
