"""The official openai SDK, unchanged, against Asahi backed by the fake upstream."""

from __future__ import annotations

import json

import openai
import pytest

from inference.ledger import ledger
from inference.models import InferenceEvent
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_create_round_trip_and_ledger(gateway, live_tenant, model: str) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Say hello to Asahi"}])
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == model
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert raw.headers["x-asahi-cache"] == "miss"
    assert raw.headers["x-asahi-model"] == model
    cost = float(raw.headers["x-asahi-cost-usd"])
    assert cost > 0
    ledger.flush()
    event = InferenceEvent.objects.get(request_id=raw.headers["x-request-id"])
    assert event.status == "ok" and event.model == model
    assert float(event.cost_usd) == pytest.approx(cost, abs=1e-9)
    assert event.input_tokens == reply.usage.prompt_tokens


def test_identical_request_is_exact_hit(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
    assert first.headers["x-asahi-cache"] == "miss"
    assert second.headers["x-asahi-cache"] == "exact"
    assert second.headers["x-asahi-cost-usd"] == "0.000000000"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    third = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=msgs, extra_body={"cache": "no-cache"})
    assert third.headers["x-asahi-cache"] == "miss"


def test_cache_control_header_bypasses_the_cache(gateway, live_tenant) -> None:
    """`Cache-Control: no-cache` skips the lookup and stores; `no-store` does neither."""
    client = client_for(gateway, live_tenant.infer.raw)
    msgs = [{"role": "user", "content": "What is the capital of Portugal?"}]

    def ask(cache_control: str | None = None) -> str:
        headers = {"Cache-Control": cache_control} if cache_control else {}
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=msgs, extra_headers=headers).headers["x-asahi-cache"]

    assert ask("no-store") == "miss"
    assert ask("max-age=0, No-Cache") == "miss"  # nothing was stored; now it is
    assert ask() == "exact"
    assert ask("no-cache") == "miss"
    assert ask("max-age=60") == "exact"  # other directives do not bypass


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_stream_with_usage(gateway, live_tenant, model: str) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Stream me a short story"}],
        stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text and finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_tools_round_trip(gateway, live_tenant, model: str) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    reply = client.chat.completions.create(
        model=model, tools=tools, tool_choice="required",
        messages=[{"role": "user", "content": "What's the weather in Paris? Use the tool."}])
    msg = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls and msg.tool_calls[0].function.name == "get_weather"
    json.loads(msg.tool_calls[0].function.arguments)
    # Send the tool result back: a second turn with an assistant tool call and a tool message.
    follow = client.chat.completions.create(model=model, tools=tools, messages=[
        {"role": "user", "content": "What's the weather in Paris? Use the tool."},
        {"role": "assistant", "content": None, "tool_calls": [tc.model_dump() for tc in msg.tool_calls]},
        {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "sunny, 21C"},
    ])
    assert follow.choices[0].message.content


def test_error_classes(gateway, live_tenant) -> None:
    bad = client_for(gateway, "ask_aaaaaaaaaa_" + "b" * 40)
    with pytest.raises(openai.AuthenticationError) as auth_err:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert auth_err.value.status_code == 401
    client = client_for(gateway, live_tenant.infer.raw)
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found" and "gpt-4o-mini" in nf.value.message
    with pytest.raises(openai.BadRequestError) as br:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                       temperature=7)
    assert br.value.param == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])


def test_rate_limit_error_has_retry_after(gateway, live_tenant) -> None:
    from governance.services import policy_update

    policy_update(organization=live_tenant.org, actor="test", changes={"rpm_limit": 2})
    client = client_for(gateway, live_tenant.infer.raw)
    for i in range(2):
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": f"q{i}"}],
                                       extra_body={"cache": "no-cache"})
    with pytest.raises(openai.RateLimitError) as rl:
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "q3"}])
    assert int(rl.value.response.headers["retry-after"]) >= 1
    assert rl.value.code == "rate_limit_exceeded"
