"""Provider adapters: one internal request/response shape over the official LLM SDKs."""

from .base import ChatStream, ProviderAdapter
from .errors import ProviderError
from .registry import KINDS, aclose_clients, get_client, make_adapter
from .types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    ContentPart,
    EmbeddingResult,
    NamedToolChoice,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "KINDS",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "ContentPart",
    "EmbeddingResult",
    "NamedToolChoice",
    "ProviderAdapter",
    "ProviderError",
    "StreamEvent",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "aclose_clients",
    "get_client",
    "make_adapter",
]
