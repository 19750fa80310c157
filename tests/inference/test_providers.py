"""Provider adapters driven through the real SDKs against the fake upstream over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from inference.providers import (
    ChatMessage,
    ChatRequest,
    ContentPart,
    NamedToolChoice,
    ProviderError,
    ToolCall,
    ToolSpec,
    get_client,
    make_adapter,
)
from inference.providers.anthropic_format import apply_cache_breakpoints, request_to_anthropic
from inference.providers.openai_format import request_from_openai, result_to_openai
from tests import fakeup

fake_upstream = fakeup.fake_upstream  # the session fixture, shared by this module

KINDS = ("openai", "openai-compatible", "anthropic", "cohere")
WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _base_url(up, kind: str) -> str:
    return {
        "openai": up.openai_base_url,
        "openai-compatible": up.openai_base_url,
        "anthropic": up.anthropic_base_url,
        "cohere": up.cohere_base_url,
    }[kind]


def _adapter(up, kind: str, **options):
    return make_adapter(kind, base_url=_base_url(up, kind), api_key="test-key", **options)


def _model() -> str:
    return f"model-{uuid.uuid4().hex[:8]}"


def _user(text: str, *, model: str | None = None, **kw) -> ChatRequest:
    return ChatRequest(
        model=model or _model(), messages=[ChatMessage(role="user", content=text)], **kw
    )


def run(coro_fn):
    """Run an async test body on a fresh loop, closing the adapter afterwards."""
    return asyncio.run(coro_fn())


# ---- chat / stream / tools through every adapter ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_chat_returns_answer_and_usage(fake_upstream, kind):
    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            return await adapter.chat(_user("Tell me about caching"))
        finally:
            await adapter.aclose()

    result = run(body)
    assert result.content == "Fake answer about: Tell me about caching."
    assert result.finish_reason == "stop"
    assert result.tool_calls == []
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens == len(result.content) // 4 + (len(result.content) % 4 > 0)
    assert result.raw_id


@pytest.mark.parametrize("kind", KINDS)
def test_stream_yields_deltas_finish_and_usage(fake_upstream, kind):
    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            stream = await adapter.stream(_user("Stream this please"))
            events = [e async for e in stream]
            return events, stream.usage
        finally:
            await adapter.aclose()

    events, usage = run(body)
    text = "".join(e.text for e in events if e.type == "delta")
    assert text == "Fake answer about: Stream this please."
    assert [e.finish_reason for e in events if e.type == "finish"] == ["stop"]
    final = [e.usage for e in events if e.type == "usage"]
    assert len(final) == 1 and final[0].output_tokens > 0 and final[0].input_tokens > 0
    assert usage == final[0]


@pytest.mark.parametrize("kind", KINDS)
def test_tool_call_in_chat_and_stream(fake_upstream, kind):
    req = _user("What is the weather in Paris? [[tool]]", tools=[WEATHER])

    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            result = await adapter.chat(req)
            stream = await adapter.stream(req)
            events = [e async for e in stream]
            return result, events
        finally:
            await adapter.aclose()

    result, events = run(body)
    assert result.finish_reason == "tool_calls"
    assert [c.name for c in result.tool_calls] == ["get_weather"]
    assert "city" in orjson.loads(result.tool_calls[0].arguments)
    deltas = [e for e in events if e.type == "tool_call_delta"]
    assert (
        deltas[0].tool_name == "get_weather" and deltas[0].tool_call_id == result.tool_calls[0].id
    )
    assert "".join(e.arguments_delta for e in deltas) == result.tool_calls[0].arguments
    assert [e.finish_reason for e in events if e.type == "finish"] == ["tool_calls"]


@pytest.mark.parametrize(
    "prompt", ["Stream this please", "What is the weather in Paris? [[tool]]"]
)
def test_openai_sdk_stream_path_gives_the_raw_paths_events(fake_upstream, prompt):
    """``raw_stream=False`` (pydantic chunks) and the default orjson path translate alike."""
    req = _user(prompt, tools=[WEATHER])

    async def events(raw_stream: bool):
        adapter = _adapter(fake_upstream, "openai", raw_stream=raw_stream)
        try:
            stream = await adapter.stream(req)
            return [e async for e in stream], stream.usage
        finally:
            await adapter.aclose()

    raw, raw_usage = run(lambda: events(True))
    sdk, sdk_usage = run(lambda: events(False))
    assert sdk == raw and sdk_usage == raw_usage
    assert {e.type for e in raw} >= {"finish", "usage"}
    assert any(e.type in ("delta", "tool_call_delta") for e in raw)


def test_openai_sdk_stream_path_maps_a_cut_stream(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "openai", raw_stream=False)
        try:
            stream = await adapter.stream(_user("cut me [[fail:stream_cut]] [[len:10]]"))
            with pytest.raises(ProviderError) as info:
                async for _ in stream:
                    pass
            return info.value
        finally:
            await adapter.aclose()

    err = run(body)
    assert err.kind == "stream_broken" and err.retryable


@pytest.mark.parametrize("kind", KINDS)
def test_tool_result_round_trip(fake_upstream, kind):
    req = ChatRequest(
        model=_model(),
        tools=[WEATHER],
        messages=[
            ChatMessage(role="user", content="Weather in Oslo?"),
            ChatMessage(
                role="assistant",
                content=None,
                tool_calls=[
                    ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}')
                ],
            ),
            ChatMessage(role="tool", tool_call_id="call_1", content="Snowing, -3C"),
        ],
    )

    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            return await adapter.chat(req)
        finally:
            await adapter.aclose()

    result = run(body)
    assert result.content == "Tool said: Snowing, -3C"
    assert result.finish_reason == "stop"


@pytest.mark.parametrize("kind", KINDS)
def test_max_tokens_gives_length(fake_upstream, kind):
    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            return await adapter.chat(_user("long [[len:200]]", max_tokens=5))
        finally:
            await adapter.aclose()

    result = run(body)
    assert result.finish_reason == "length"
    assert len(result.content or "") <= 20


# ---- failure modes -> ProviderError -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "fault,expected_kind,retry_after",
    [
        ("429", "rate_limit", 1.5),  # retry-after-ms wins over retry-after
        ("500", "server", None),
        ("timeout", "timeout", None),
        ("malformed", "malformed", None),
        ("bad_shape", "malformed", None),
    ],
)
def test_faults_map_to_provider_errors(fake_upstream, kind, fault, expected_kind, retry_after):
    async def body():
        # Only the timeout case needs a short client timeout; elsewhere a loaded machine must not
        # turn a slow 500 or malformed answer into a timeout.
        adapter = _adapter(fake_upstream, kind, timeout_s=0.4 if fault == "timeout" else 10.0)
        try:
            await adapter.chat(_user(f"hello [[fail:{fault}]]"))
        finally:
            await adapter.aclose()

    with pytest.raises(ProviderError) as info:
        run(body)
    err = info.value
    assert err.kind == expected_kind
    assert err.retryable is True
    assert err.retry_after == retry_after
    assert err.provider == kind
    if fault in ("429", "500"):
        assert err.status == int(fault)


@pytest.mark.parametrize("kind", KINDS)
def test_stream_status_error_raises_before_streaming(fake_upstream, kind):
    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            await adapter.stream(_user("hello [[fail:429]]"))
        finally:
            await adapter.aclose()

    with pytest.raises(ProviderError) as info:
        run(body)
    assert info.value.kind == "rate_limit" and info.value.retry_after == 1.5


def test_model_scoped_fault_only_hits_that_model(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "openai")
        try:
            text = "hi [[fail:500@primary-x]]"
            with pytest.raises(ProviderError) as info:
                await adapter.chat(_user(text, model="primary-x"))
            fallback = await adapter.chat(_user(text, model="fallback-y"))
            return info.value, fallback
        finally:
            await adapter.aclose()

    err, fallback = run(body)
    assert err.kind == "server"
    assert fallback.finish_reason == "stop"


@pytest.mark.parametrize("kind", KINDS)
def test_stream_cut_yields_partial_then_stream_broken(fake_upstream, kind):
    async def body():
        adapter = _adapter(fake_upstream, kind)
        got = []
        try:
            stream = await adapter.stream(_user("cut me [[fail:stream_cut]] [[len:10]]"))
            with pytest.raises(ProviderError) as info:
                async for event in stream:
                    got.append(event)
            return got, info.value
        finally:
            await adapter.aclose()

    got, err = run(body)
    deltas = [e.text for e in got if e.type == "delta"]
    assert 0 < len(deltas) < 10
    assert not any(e.type == "finish" for e in got)
    assert err.kind == "stream_broken" and err.retryable


@pytest.mark.parametrize("kind", KINDS)
def test_closing_stream_early_disconnects_upstream(fake_upstream, kind):
    async def body():
        adapter = _adapter(fake_upstream, kind)
        try:
            before = fake_upstream.stats()["disconnects"]
            stream = await adapter.stream(_user("slow [[chunk_ms:50]] [[len:100]]"))
            first = await stream.__anext__()
            await stream.aclose()
            # 100 chunks at 50 ms would take 5 s; the server notices the disconnect at its next write.
            deadline = time.monotonic() + 3
            while fake_upstream.stats()["disconnects"] == before and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return first, fake_upstream.stats()["disconnects"] - before
        finally:
            await adapter.aclose()

    first, disconnects = run(body)
    assert first.type in ("delta", "tool_call_delta")
    assert disconnects >= 1


# ---- provider specifics -------------------------------------------------------------------------


def test_openai_reasoning_and_cached_tokens(fake_upstream):
    history = [ChatMessage(role="system", content="rules " * 1200)]
    model = f"o3-mini-{uuid.uuid4().hex[:6]}"

    async def body():
        adapter = _adapter(fake_upstream, "openai")
        try:
            first = await adapter.chat(
                ChatRequest(model=model, messages=[*history, ChatMessage(role="user", content="a")])
            )
            second = await adapter.chat(
                ChatRequest(model=model, messages=[*history, ChatMessage(role="user", content="b")])
            )
            return first, second
        finally:
            await adapter.aclose()

    first, second = run(body)
    assert first.usage.reasoning_tokens == 16
    assert first.usage.output_tokens >= 16
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens == (len("rules " * 1200) // 4 // 128) * 128
    assert (
        second.usage.uncached_input_tokens
        == second.usage.input_tokens - second.usage.cached_input_tokens
    )


def test_openai_embeddings(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "openai")
        try:
            return await adapter.embed(["alpha", "beta", "alpha"], "text-embedding-3-small")
        finally:
            await adapter.aclose()

    res = run(body)
    assert len(res.vectors) == 3 and len(res.vectors[0]) == 256
    assert res.vectors[0] == res.vectors[2] != res.vectors[1]
    assert res.input_tokens == 2 + 1 + 2  # ceil(len/4) per text


def test_cohere_embed(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "cohere")
        try:
            return await adapter.embed(["alpha", "beta"], "embed-v4.0")
        finally:
            await adapter.aclose()

    res = run(body)
    assert len(res.vectors) == 2 and res.vectors[0] != res.vectors[1]
    assert abs(sum(x * x for x in res.vectors[0]) - 1.0) < 1e-9
    assert res.input_tokens == 2 + 1


def test_anthropic_has_no_embeddings(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "anthropic")
        try:
            await adapter.embed(["x"], "any")
        finally:
            await adapter.aclose()

    with pytest.raises(ProviderError) as info:
        run(body)
    assert info.value.kind == "bad_request" and not info.value.retryable


def test_anthropic_stop_sequence_maps_to_stop(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "anthropic")
        try:
            return await adapter.chat(_user("about cats", stop=["about"]))
        finally:
            await adapter.aclose()

    result = run(body)
    assert result.content == "Fake answer "
    assert result.finish_reason == "stop"


def test_anthropic_auto_cache_reports_creation_then_read(fake_upstream):
    system = ChatMessage(role="system", content="You are a careful assistant. " * 200)
    model = f"claude-{uuid.uuid4().hex[:6]}"

    async def body():
        adapter = _adapter(fake_upstream, "anthropic")
        try:
            out = []
            for q in ("first question", "second question"):
                out.append(
                    await adapter.chat(
                        ChatRequest(
                            model=model, messages=[system, ChatMessage(role="user", content=q)]
                        )
                    )
                )
            stream = await adapter.stream(
                ChatRequest(
                    model=model, messages=[system, ChatMessage(role="user", content="third")]
                )
            )
            events = [e async for e in stream]
            return out, events
        finally:
            await adapter.aclose()

    (first, second), events = run(body)
    prefix = (len("You are a careful assistant. " * 200) + 3) // 4
    assert first.usage.cache_write_tokens == prefix and first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens == prefix and second.usage.cache_write_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    streamed = [e.usage for e in events if e.type == "usage"][0]
    assert streamed.cached_input_tokens == prefix
    assert streamed.input_tokens > prefix


def test_anthropic_request_translation():
    req = ChatRequest(
        model="claude-x",
        messages=[
            ChatMessage(role="system", content="Be terse."),
            ChatMessage(
                role="user",
                content=[
                    ContentPart(type="text", text="Look:"),
                    ContentPart(type="image_url", image_url="data:image/png;base64,AAAA"),
                ],
            ),
            ChatMessage(
                role="assistant",
                content="Calling.",
                tool_calls=[
                    ToolCall(id="t1", name="get_weather", arguments='{"city":"Rome"}'),
                    ToolCall(id="t2", name="get_weather", arguments='{"city":"Oslo"}'),
                ],
            ),
            ChatMessage(role="tool", tool_call_id="t1", content="sunny"),
            ChatMessage(role="tool", tool_call_id="t2", content="snow"),
            ChatMessage(role="user", content="Compare them."),
        ],
        tools=[WEATHER],
        tool_choice="required",
        temperature=1.5,
        stop=["END"],
        user="u-1",
    )
    kw = request_to_anthropic(req)
    assert kw["system"] == [{"type": "text", "text": "Be terse."}]
    assert [m["role"] for m in kw["messages"]] == ["user", "assistant", "user"]
    assert kw["messages"][0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "AAAA",
    }
    assistant = kw["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Calling."}
    assert assistant[1] == {
        "type": "tool_use",
        "id": "t1",
        "name": "get_weather",
        "input": {"city": "Rome"},
    }
    results = kw["messages"][2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result", "text"]
    assert results[1] == {"type": "tool_result", "tool_use_id": "t2", "content": "snow"}
    assert kw["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert kw["tool_choice"] == {"type": "any"}
    assert kw["temperature"] == 1.0
    assert kw["stop_sequences"] == ["END"]
    assert kw["metadata"] == {"user_id": "u-1"}
    assert kw["max_tokens"] == 4096
    named = request_to_anthropic(
        ChatRequest(
            model="c",
            messages=req.messages,
            tools=[WEATHER],
            tool_choice=NamedToolChoice(name="get_weather"),
        )
    )
    assert named["tool_choice"] == {"type": "tool", "name": "get_weather"}


def test_cache_breakpoints_skip_short_prompts():
    system = [{"type": "text", "text": "short system prompt"}]
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert apply_cache_breakpoints(tools=[], system=system, messages=messages) == 0
    assert "cache_control" not in system[0]


def test_cache_breakpoints_on_system_history_and_documents():
    doc = "lorem ipsum " * 600  # ~1800 tokens
    system = [{"type": "text", "text": "policy " * 700}]
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": doc}, {"type": "text", "text": "Summarise"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Summary."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Another doc: " + doc},
                {"type": "text", "text": "And?"},
            ],
        },
    ]
    added = apply_cache_breakpoints(tools=[], system=system, messages=messages)
    assert added == 4
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    assert messages[1]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # end of history
    assert (
        "cache_control" in messages[0]["content"][0]
        and "cache_control" in messages[2]["content"][0]
    )
    assert "cache_control" not in messages[2]["content"][-1]  # the changing question


def test_cache_breakpoints_respect_limit_with_explicit_ones():
    doc = "x" * 8000
    system = [
        {"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}},
    ]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": doc},
                {"type": "text", "text": doc},
                {"type": "text", "text": "q"},
            ],
        }
    ]
    added = apply_cache_breakpoints(tools=[], system=system, messages=messages)
    total = sum("cache_control" in b for b in [*system, *messages[0]["content"]])
    assert added == 1 and total == 4


def test_openai_format_round_trip():
    body = {
        "model": "gpt-4o",
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "stop": "END",
        "seed": 7,
        "messages": [
            {"role": "system", "content": "s"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "http://x/i.png"}},
                ],
            },
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    req = request_from_openai(body)
    assert req.max_tokens == 50 and req.stop == ["END"] and req.extra == {"seed": 7}
    assert req.tool_choice == NamedToolChoice(name="f")
    assert req.messages[1].content[1].image_url == "http://x/i.png"
    with pytest.raises(ProviderError) as info:
        request_from_openai({"messages": []})
    assert info.value.kind == "bad_request"


def test_result_to_openai_uses_internal_usage(fake_upstream):
    async def body():
        adapter = _adapter(fake_upstream, "anthropic")
        try:
            return await adapter.chat(_user("x"))
        finally:
            await adapter.aclose()

    result = run(body)
    out = result_to_openai(result)
    assert out["choices"][0]["message"]["content"] == result.content
    assert out["usage"]["prompt_tokens"] == result.usage.input_tokens
    assert out["usage"]["total_tokens"] == result.usage.input_tokens + result.usage.output_tokens


# ---- registry -----------------------------------------------------------------------------------


def test_get_client_caches_per_loop(fake_upstream):
    async def body():
        a = get_client("openai", fake_upstream.openai_base_url, "k")
        b = get_client("openai", fake_upstream.openai_base_url, "k")
        c = get_client("openai", fake_upstream.openai_base_url, "other-key")
        await a.chat(_user("ping"))
        for adapter in (a, c):
            await adapter.aclose()
        return a, b, c

    a1, b1, c1 = run(body)
    a2, _, _ = run(body)
    assert a1 is b1 and a1 is not c1
    assert a2 is not a1  # a new loop gets its own client


def test_get_client_rejects_unknown_kind():
    async def body():
        get_client("mistral-magic", None, None)

    with pytest.raises(ProviderError) as info:
        run(body)
    assert info.value.kind == "bad_request"


def test_sdk_env_vars_used_when_no_explicit_values(fake_upstream, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_upstream.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_upstream.anthropic_base_url)
    monkeypatch.setenv("COHERE_API_KEY", "env-key")
    monkeypatch.setenv("CO_API_URL", fake_upstream.cohere_base_url)
    model = _model()

    async def body():
        for kind in ("openai", "anthropic", "cohere"):
            adapter = make_adapter(kind)
            try:
                await adapter.chat(_user("via env", model=model))
            finally:
                await adapter.aclose()

    run(body)
    assert fake_upstream.stats()["by_model"][model] == 3
