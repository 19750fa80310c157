"""Provider-neutral request/response shapes shared by every adapter.

The gateway speaks OpenAI's chat format at its edge; adapters translate these dataclasses to each
provider's wire format and back. Usage counting convention (the same for every provider, so pricing
code never needs to know where a number came from):

* ``input_tokens`` is the *whole* prompt, including tokens read from or written to a provider cache.
* ``cached_input_tokens`` and ``cache_write_tokens`` are subsets of ``input_tokens``.
* ``output_tokens`` includes ``reasoning_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
ToolChoiceMode = Literal["auto", "none", "required"]


@dataclass(slots=True)
class ContentPart:
    """One element of a multi-part message (OpenAI's ``content: [...]`` form)."""

    type: Literal["text", "image_url"]
    text: str = ""
    image_url: str | None = None
    # Explicit prompt-cache breakpoint requested by the caller (Anthropic ``cache_control``).
    cache: bool = False


@dataclass(slots=True)
class ToolCall:
    """A function call emitted by the model; ``arguments`` is the raw JSON string."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ToolSpec:
    """A function tool the model may call (``parameters`` is a JSON schema)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(slots=True)
class NamedToolChoice:
    """Force the model to call one specific tool."""

    name: str


@dataclass(slots=True)
class ChatMessage:
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text, with multi-part text segments joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.type == "text")


@dataclass(slots=True)
class ChatRequest:
    """A chat request addressed to one upstream model (``model`` is the provider's own name)."""

    model: str
    messages: list[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoiceMode | NamedToolChoice | None = None
    # OpenAI shape ({"type": "json_object"} / {"type": "json_schema", ...}); passed through.
    response_format: dict[str, Any] | None = None
    user: str | None = None
    stream: bool = False
    # Provider-specific fields sent verbatim in the request body (e.g. ``seed``).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        """Prompt tokens billed at the normal input rate."""
        return max(0, self.input_tokens - self.cached_input_tokens - self.cache_write_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResult:
    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: FinishReason
    usage: Usage
    model: str
    raw_id: str


StreamEventType = Literal["delta", "tool_call_delta", "finish", "usage"]


@dataclass(slots=True)
class StreamEvent:
    """One streamed increment.

    * ``delta``: ``text`` holds new answer text.
    * ``tool_call_delta``: ``tool_index`` identifies the call; the first delta of a call carries
      ``tool_call_id`` and ``tool_name``; ``arguments_delta`` are JSON fragments to concatenate.
    * ``finish``: ``finish_reason`` is set.
    * ``usage``: ``usage`` is set (the provider's final numbers).
    """

    type: StreamEventType
    text: str = ""
    tool_index: int = 0
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments_delta: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    input_tokens: int
    model: str = ""
