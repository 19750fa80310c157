"""Deterministic behaviour of the fake upstream: answers, token counts, embeddings, fault markers.

Rules (documented in docs/_parts/providers.md):

* Tokens are counted as ``ceil(len(text) / 4)`` (at least 1 for non-empty text).
* The answer is ``"Fake answer about: <first 8 words of the last user message>."``; the marker
  ``[[len:N]]`` makes it exactly N words instead (a fixed vocabulary, picked by a prompt hash).
* Markers in the last user message (or the ``X-Fake-Fail`` header, same syntax without brackets):
  ``[[fail:KIND]]`` or ``[[fail:KIND@model]]`` where KIND is ``429``, ``500``, ``timeout``,
  ``stream_cut``, ``stall``, ``malformed`` or ``bad_shape`` (``@model`` limits the fault to that
  model);
  ``stream_cut`` breaks the answer off half-way (a stream after half its chunks, a JSON body after
  half its bytes) by dropping the connection, ``stall`` goes silent there instead and drops it
  only after the server's ``timeout_sleep_s``; ``malformed`` is a 200 whose JSON body is cut
  (a stream: half the answer, then an event that is not JSON, then the end); ``bad_shape`` is a
  200 of valid JSON without the protocol's fields (a stream: three such events, then the end);
  ``[[chunk_ms:N]]`` sleeps N ms between streamed chunks; ``[[tool]]`` asks for a tool call.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

FAIL_KINDS = ("429", "500", "timeout", "stream_cut", "stall", "malformed", "bad_shape")
_FAIL_RE = re.compile(r"\[\[fail:([a-z0-9_]+)(?:@([^\]\s]+))?\]\]")
_LEN_RE = re.compile(r"\[\[len:(\d+)\]\]")
_CHUNK_RE = re.compile(r"\[\[chunk_ms:(\d+)\]\]")
_MARKER_RE = re.compile(r"\[\[[a-z_]+(?::[^\]]*)?\]\]")
_VOCAB = [
    "alpha",
    "bravo",
    "cost",
    "cache",
    "token",
    "route",
    "model",
    "answer",
    "gateway",
    "budget",
    "prompt",
    "latency",
    "vector",
    "saving",
    "tier",
    "provider",
    "stream",
    "usage",
    "policy",
    "metric",
]


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def strip_markers(text: str) -> str:
    return _MARKER_RE.sub("", text).strip()


@dataclass(frozen=True, slots=True)
class Directives:
    """What the markers of one request ask for."""

    fail: str | None = None
    answer_words: int | None = None
    chunk_ms: int = 0
    want_tool: bool = False


def parse_directives(text: str, *, header: str | None, model: str) -> Directives:
    fail = None
    specs = [(m.group(1), m.group(2)) for m in _FAIL_RE.finditer(text)]
    if header:
        for item in header.split(","):
            kind, _, target = item.strip().partition("@")
            specs.insert(0, (kind, target or None))
    for kind, target in specs:
        if kind in FAIL_KINDS and (target is None or target == model):
            fail = kind
            break
    length = _LEN_RE.search(text)
    chunk = _CHUNK_RE.search(text)
    return Directives(
        fail=fail,
        answer_words=int(length.group(1)) if length else None,
        chunk_ms=int(chunk.group(1)) if chunk else 0,
        want_tool="[[tool]]" in text,
    )


def make_answer(prompt: str, *, words: int | None) -> str:
    clean = strip_markers(prompt)
    if words is None:
        head = " ".join(clean.split()[:8]) or "nothing"
        return f"Fake answer about: {head}."
    seed = int.from_bytes(hashlib.blake2b(clean.encode(), digest_size=4).digest(), "big")
    return " ".join(_VOCAB[(seed + i * 7) % len(_VOCAB)] for i in range(words))


def truncate_to_tokens(answer: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cut the answer to ``max_tokens`` (4 chars each); returns (text, was_truncated)."""
    if max_tokens is None or count_tokens(answer) <= max_tokens:
        return answer, False
    return answer[: max_tokens * 4], True


def split_chunks(answer: str) -> list[str]:
    """Word-sized stream chunks whose concatenation is exactly ``answer``."""
    parts = re.findall(r"\s*\S+", answer)
    return parts or [answer]


def embed_text(text: str, dims: int) -> list[float]:
    """A unit vector seeded by the text's hash: equal texts give equal vectors."""
    seed = struct.unpack("<Q", hashlib.blake2b(text.encode(), digest_size=8).digest())[0]
    vec = np.random.default_rng(seed).standard_normal(dims)
    vec /= np.linalg.norm(vec)
    return [float(x) for x in vec]


def sample_arguments(schema: dict, prompt: str) -> dict:
    """Arguments satisfying a JSON schema's top-level properties (values derived from the prompt)."""
    props = schema.get("properties") or {}
    words = strip_markers(prompt).split() or ["x"]
    out: dict = {}
    for i, (name, spec) in enumerate(props.items()):
        typ = spec.get("type", "string") if isinstance(spec, dict) else "string"
        if isinstance(spec, dict) and spec.get("enum"):
            out[name] = spec["enum"][0]
        elif typ in ("integer", "number"):
            out[name] = i + 1
        elif typ == "boolean":
            out[name] = True
        elif typ == "array":
            out[name] = []
        elif typ == "object":
            out[name] = {}
        else:
            out[name] = words[i % len(words)].strip(".,?!")
    return out


def reply_text(messages: list[dict], prompt: str, *, words: int | None) -> str:
    """The answer to an OpenAI/Cohere-style conversation: a tool result is echoed back."""
    if messages and messages[-1].get("role") == "tool":
        return f"Tool said: {content_text(messages[-1].get('content'))[:80]}"
    return make_answer(prompt, words=words)


def function_call(tool: dict[str, Any], prompt: str) -> dict[str, Any]:
    """A call of ``tool`` in the ``{"id", "type": "function", "function"}`` shape that OpenAI
    and Cohere v2 share, with arguments derived from the prompt."""
    arguments = sample_arguments(tool.get("parameters") or {}, prompt)
    return {
        "id": f"call_{prefix_key(prompt.encode())[:12]}",
        "type": "function",
        "function": {"name": tool["name"], "arguments": orjson.dumps(arguments).decode()},
    }


def prefix_key(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def content_text(content: Any) -> str:
    """Text of an OpenAI/Cohere-v2 message content (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""
