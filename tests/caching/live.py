"""Helpers of the cache tests that drive the live gateway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from caching.models import SemanticEntry
from tests.inference.conftest import client_for


def wait_for_semantic_entries(org_id: uuid.UUID, n: int) -> None:
    """Semantic stores run after the response; wait until the organization has ``n`` entries."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if SemanticEntry.objects.filter(organization_id=org_id).count() >= n:
            return
        time.sleep(0.05)
    raise AssertionError("semantic entry was not stored")


@contextmanager
def slow_upstream(fake_upstream: Any, latency_ms: int = 400) -> Iterator[None]:
    """A slow upstream, so that concurrent requests all miss together."""
    old = fake_upstream.config.latency_ms
    fake_upstream.config.latency_ms = latency_ms
    try:
        yield
    finally:
        fake_upstream.config.latency_ms = old


def stream_answer(base: str, key: str, text: str, **kw: Any,
                  ) -> tuple[dict[str, str], str, str | None, int]:
    """Headers, text, finish reason and completion tokens of one streamed answer."""
    raw = client_for(base, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True}, **kw)
    body, finish, tokens = "", None, 0
    for chunk in raw.parse():
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            body += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return dict(raw.headers), body, finish, tokens
