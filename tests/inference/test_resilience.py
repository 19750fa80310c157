"""Injected upstream failures: fallback to another model, clear errors, SSE error on a cut stream."""

from __future__ import annotations

import httpx
import openai
import pytest

from inference.ledger import ledger
from inference.models import InferenceEvent
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


def test_failure_falls_back_to_named_fallback(gateway, live_tenant, upstream_env) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi [[fail:500@gpt-4o-mini]]"}],
        extra_body={"fallbacks": ["claude-haiku-4-5"]})
    assert raw.headers["x-asahi-model"] == "claude-haiku-4-5"
    assert raw.parse().choices[0].message.content
    ledger.flush()
    event = InferenceEvent.objects.get(request_id=raw.headers["x-request-id"])
    assert "fell back to claude-haiku-4-5" in event.routing_reason
    assert event.model == "claude-haiku-4-5"


def test_autopilot_falls_back_along_the_ranked_chain(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Summarize: the sky is blue."}],
        extra_body={"cache": "no-store"})
    chosen = first.headers["x-asahi-model"]
    raw = client.chat.completions.with_raw_response.create(
        model="auto", extra_body={"cache": "no-store"},
        messages=[{"role": "user", "content": f"Summarize: the sky is blue. [[fail:500@{chosen}]]"}])
    assert raw.headers["x-asahi-model"] != chosen


def test_explicit_failure_is_a_clear_error_and_not_charged(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x [[fail:500]]"}])
    assert exc.value.status_code == 502
    assert "upstream" in exc.value.message
    with pytest.raises(openai.APIStatusError) as malformed:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x [[fail:malformed]]"}])
    assert malformed.value.status_code == 502
    ledger.flush()
    failed = InferenceEvent.objects.filter(organization=live_tenant.org, status="error")
    assert failed.count() == 2
    assert all(e.cost_usd == 0 for e in failed)


def test_upstream_429_maps_to_rate_limit_with_retry_after(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x [[fail:429]]"}])
    assert "retry-after" in exc.value.response.headers


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_stream_cut_mid_answer_ends_in_sse_error_event(gateway, live_tenant, model) -> None:
    with httpx.stream("POST", f"{gateway}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {live_tenant.infer.raw}"},
                      json={"model": model, "stream": True, "messages": [
                          {"role": "user", "content": "tell me more [[len:80]] [[fail:stream_cut]]"}]},
                      timeout=30) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] != "data: [DONE]"
    assert '"error"' in lines[-1] and "upstream_stream_broken" in lines[-1]
    assert any('"content"' in line for line in lines[1:-1])  # part of the answer was relayed
    # The SDK surfaces it as an error, not a clean end.
    client = client_for(gateway, live_tenant.infer.raw)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
                model=model, stream=True,
                messages=[{"role": "user", "content": "again [[len:80]] [[fail:stream_cut]]"}]):
            pass
    ledger.flush()
    cut = InferenceEvent.objects.filter(organization=live_tenant.org, status="error", stream=True)
    assert cut.count() == 2
    assert all(e.output_tokens > 0 and e.cost_usd > 0 for e in cut)  # charged what was produced


def test_stream_falls_back_before_first_byte(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", stream=True, extra_body={"fallbacks": ["claude-haiku-4-5"]},
        messages=[{"role": "user", "content": "hi [[fail:500@gpt-4o-mini]]"}])
    assert raw.headers["x-asahi-model"] == "claude-haiku-4-5"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text


def test_client_disconnect_cancels_upstream_and_charges_what_was_used(gateway, live_tenant,
                                                                      fake_upstream) -> None:
    import socket
    import time

    import orjson

    before = fake_upstream.stats()["disconnects"]
    host, port = gateway.removeprefix("http://").split(":")
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [
        {"role": "user", "content": "a long story please [[len:400]] [[chunk_ms:20]]"}]})
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {live_tenant.infer.raw}\r\n".encode()
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    received = b""
    while received.count(b"data: ") < 5:  # a few chunks of the answer
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    sock.close()  # the client goes away mid-answer
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fake_upstream.stats()["disconnects"] == before:
        time.sleep(0.05)
    assert fake_upstream.stats()["disconnects"] > before  # the upstream call was cancelled
    deadline = time.monotonic() + 10
    event = None
    while time.monotonic() < deadline and event is None:
        ledger.flush()
        event = InferenceEvent.objects.filter(organization=live_tenant.org,
                                              status="cancelled").first()
        time.sleep(0.05)
    assert event is not None
    assert 0 < event.output_tokens < 400  # charged for what was produced, not the whole answer
    assert event.cost_usd > 0


def test_breaker_counts_one_failure_per_request_not_per_retry(gateway, live_tenant) -> None:
    """Two failed requests (each retried) are two failures, below the threshold of five: the
    model stays available. Counting every attempt opened the circuit for everyone."""
    from django.conf import settings

    assert settings.ASAHI_UPSTREAM_RETRIES >= 2  # each failed request makes 3+ attempts
    client = client_for(gateway, live_tenant.infer.raw)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="gpt-4o-mini", extra_body={"cache": "no-store"},
                messages=[{"role": "user", "content": "x [[fail:500]]"}])
    ok = client.chat.completions.create(
        model="gpt-4o-mini", extra_body={"cache": "no-store"},
        messages=[{"role": "user", "content": "Still there?"}])
    assert ok.choices[0].message.content


# --- Timeouts, stalls and malformed bodies, for each provider kind ------------------------------

PROVIDER_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
                   "cohere": "command-r-08-2024"}
# A different provider kind to fall back to, for each.
FALLBACK_FOR = {"gpt-4o-mini": "claude-haiku-4-5", "claude-haiku-4-5": "command-r-08-2024",
                "command-r-08-2024": "gpt-4o-mini"}
# The fake upstream stalls 5 s (tests/fakeup.py); the gateway must give up long before that.
UPSTREAM_TIMEOUT_S = 0.5


@pytest.fixture
def short_timeout(settings):
    settings.ASAHI_UPSTREAM_TIMEOUT = UPSTREAM_TIMEOUT_S
    settings.ASAHI_UPSTREAM_RETRIES = 1
    return UPSTREAM_TIMEOUT_S


def _failures(model: str) -> int:
    """Failures the breaker has counted for ``model`` (its Redis window)."""
    from asahi_project.redis_client import get_sync_redis
    from governance.limits.keys import breaker_keys
    from inference.selectors import get_catalogue

    info = get_catalogue().models[model]
    return int(get_sync_redis().zcard(breaker_keys(name=f"{info.provider}:{info.name}")[1]))


def _sse_lines(gateway: str, key: str, model: str, prompt: str, **extra) -> tuple[int, list[str]]:
    with httpx.stream("POST", f"{gateway}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "stream": True, **extra, "cache": "no-store",
                            "messages": [{"role": "user", "content": prompt}]},
                      timeout=30) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.text]
        return 200, [line for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("model", PROVIDER_MODELS.values())
@pytest.mark.parametrize("fault", ["timeout", "stall"])
def test_upstream_timeout_is_a_504_not_charged_and_counted_once(gateway, live_tenant, short_timeout,
                                                                model, fault) -> None:
    """``timeout``: no answer at all; ``stall``: half a JSON body, then silence. Either way the
    gateway gives up after ASAHI_UPSTREAM_TIMEOUT per attempt, not after the upstream's 5 s."""
    import time

    client = client_for(gateway, live_tenant.infer.raw, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(
            model=model, extra_body={"cache": "no-store"},
            messages=[{"role": "user", "content": f"slow one [[fail:{fault}]]"}])
    elapsed = time.monotonic() - t0
    assert exc.value.status_code == 504
    assert exc.value.body["code"] == "upstream_timeout"  # type: ignore[index]
    assert elapsed < 4.0  # two attempts of 0.5 s and a back-off, not 5 s each
    ledger.flush()
    event = InferenceEvent.objects.get(organization=live_tenant.org)
    assert (event.status, event.http_status, event.error_code) == ("error", 504,
                                                                   "upstream_timeout")
    assert event.cost_usd == 0
    assert _failures(model) == 1  # one request, one failure, whatever the retries


@pytest.mark.parametrize("model", PROVIDER_MODELS.values())
def test_upstream_timeout_falls_back_to_the_next_model(gateway, live_tenant, short_timeout,
                                                       model) -> None:
    client = client_for(gateway, live_tenant.infer.raw, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model=model, extra_body={"cache": "no-store", "fallbacks": [FALLBACK_FOR[model]]},
        messages=[{"role": "user", "content": f"slow one [[fail:timeout@{model}]]"}])
    assert raw.headers["x-asahi-model"] == FALLBACK_FOR[model]
    assert raw.parse().choices[0].message.content
    status, lines = _sse_lines(gateway, live_tenant.infer.raw, model,
                               f"slow stream [[fail:timeout@{model}]]",
                               fallbacks=[FALLBACK_FOR[model]])
    assert status == 200 and lines[-1] == "data: [DONE]"
    ledger.flush()
    events = InferenceEvent.objects.filter(organization=live_tenant.org)
    assert {(e.model, e.status) for e in events} == {(FALLBACK_FOR[model], "ok")}
    assert _failures(model) == 2  # the plain request and the stream, once each


@pytest.mark.parametrize("model", PROVIDER_MODELS.values())
def test_stream_timing_out_before_first_byte_is_a_504(gateway, live_tenant, short_timeout,
                                                      model) -> None:
    status, body = _sse_lines(gateway, live_tenant.infer.raw, model, "slow [[fail:timeout]]")
    assert status == 504 and "upstream_timeout" in body[0]
    ledger.flush()
    event = InferenceEvent.objects.get(organization=live_tenant.org)
    assert (event.status, event.error_code, event.cost_usd) == ("error", "upstream_timeout", 0)
    assert _failures(model) == 1


@pytest.mark.parametrize("model", PROVIDER_MODELS.values())
def test_stream_stalling_mid_answer_ends_in_sse_error_within_the_timeout(
        gateway, live_tenant, short_timeout, model) -> None:
    import time

    t0 = time.monotonic()
    status, lines = _sse_lines(gateway, live_tenant.infer.raw, model,
                               "tell me more [[len:80]] [[fail:stall]]")
    elapsed = time.monotonic() - t0
    assert status == 200
    assert elapsed < 3.0  # the upstream would stay silent for 5 s
    assert lines[-1] != "data: [DONE]"
    assert '"error"' in lines[-1] and "upstream_timeout" in lines[-1]
    assert any('"content"' in line for line in lines[1:-1])  # part of the answer was relayed
    ledger.flush()
    event = InferenceEvent.objects.get(organization=live_tenant.org)
    assert (event.status, event.error_code) == ("error", "upstream_timeout")
    full_answer_tokens = 80 * 9 // 4  # 80 words of up to 8 letters and a space
    assert 0 < event.output_tokens < full_answer_tokens  # charged what was produced
    assert event.cost_usd > 0
    assert _failures(model) == 1


@pytest.mark.parametrize("model", PROVIDER_MODELS.values())
@pytest.mark.parametrize("fault", ["malformed", "bad_shape"])
def test_malformed_answer_is_a_502_or_a_fallback(gateway, live_tenant, model, fault) -> None:
    """A 200 whose body is not JSON, or JSON without the expected fields: never a 500."""
    client = client_for(gateway, live_tenant.infer.raw, timeout=30)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(
            model=model, extra_body={"cache": "no-store"},
            messages=[{"role": "user", "content": f"x [[fail:{fault}]]"}])
    assert exc.value.status_code == 502
    assert exc.value.body["code"] == "upstream_malformed"  # type: ignore[index]
    raw = client.chat.completions.with_raw_response.create(
        model=model, extra_body={"cache": "no-store", "fallbacks": [FALLBACK_FOR[model]]},
        messages=[{"role": "user", "content": f"y [[fail:{fault}@{model}]]"}])
    assert raw.headers["x-asahi-model"] == FALLBACK_FOR[model]
    ledger.flush()
    failed = InferenceEvent.objects.get(organization=live_tenant.org, status="error")
    assert (failed.http_status, failed.error_code, failed.cost_usd) == (502, "upstream_malformed",
                                                                        0)
    assert _failures(model) == 2  # once per request


@pytest.mark.parametrize("model", PROVIDER_MODELS.values())
def test_stream_of_shapeless_events_is_a_502_or_a_fallback(gateway, live_tenant, model) -> None:
    """Events that are JSON but not the protocol's: nothing was relayed, so a plain error."""
    status, body = _sse_lines(gateway, live_tenant.infer.raw, model, "x [[fail:bad_shape]]")
    assert status == 502, body
    assert '"code"' in body[0] and "upstream_" in body[0]
    status, lines = _sse_lines(gateway, live_tenant.infer.raw, model,
                               f"y [[fail:bad_shape@{model}]]", fallbacks=[FALLBACK_FOR[model]])
    assert status == 200 and lines[-1] == "data: [DONE]"
    ledger.flush()
    failed = InferenceEvent.objects.get(organization=live_tenant.org, status="error")
    assert (failed.http_status, failed.cost_usd) == (502, 0)


@pytest.mark.parametrize("model,code", [
    ("gpt-4o-mini", "upstream_malformed"),
    ("claude-haiku-4-5", "upstream_malformed"),
    # The cohere SDK drops an event that is not JSON (with a warning) and reads on: the stream
    # then ends without message-end.
    ("command-r-08-2024", "upstream_stream_broken"),
])
def test_stream_with_an_event_that_is_not_json_ends_in_sse_error(gateway, live_tenant, model,
                                                                 code) -> None:
    status, lines = _sse_lines(gateway, live_tenant.infer.raw, model,
                               "tell me more [[len:80]] [[fail:malformed]]")
    assert status == 200
    assert lines[-1] != "data: [DONE]"
    assert '"error"' in lines[-1] and code in lines[-1]
    assert any('"content"' in line for line in lines[1:-1])  # part of the answer was relayed
    ledger.flush()
    event = InferenceEvent.objects.get(organization=live_tenant.org)
    assert (event.status, event.error_code) == ("error", code)
    assert 0 < event.output_tokens < 80 * 9 // 4 and event.cost_usd > 0
