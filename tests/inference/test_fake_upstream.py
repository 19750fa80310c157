"""The fake upstream speaks each provider's wire protocol and injects faults on request."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
import uuid

import pytest

from inference.fake_upstream import start_fake_upstream
from inference.fake_upstream.behaviour import count_tokens, parse_directives
from tests import fakeup

fake_upstream = fakeup.fake_upstream  # the session fixture, shared by this module


def _post(base: str, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _sse(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((event, data))
    return events


def _model() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


def test_token_rule_is_four_chars_per_token():
    assert count_tokens("") == 0
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens("x" * 400) == 100


def test_fail_marker_scoped_to_model():
    d = parse_directives("hi [[fail:500@gpt-a]]", header=None, model="gpt-b")
    assert d.fail is None
    assert parse_directives("hi [[fail:500@gpt-a]]", header=None, model="gpt-a").fail == "500"
    assert parse_directives("hi", header="429", model="any").fail == "429"


def test_openai_chat_json_shape_and_usage(fake_upstream):
    prompt = "What is the capital of France?"
    status, headers, raw = _post(
        fake_upstream.base_url,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
    )
    body = json.loads(raw)
    assert status == 200
    assert body["object"] == "chat.completion"
    assert (
        body["choices"][0]["message"]["content"]
        == "Fake answer about: What is the capital of France?."
    )
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == math.ceil(len(prompt) / 4)
    assert body["usage"]["completion_tokens"] == math.ceil(
        len(body["choices"][0]["message"]["content"]) / 4
    )


def test_openai_stream_usage_chunk_only_when_asked(fake_upstream):
    base = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hello world"}],
    }
    _, headers, raw = _post(fake_upstream.base_url, "/v1/chat/completions", base)
    events = _sse(raw)
    assert headers["Content-Type"].startswith("text/event-stream")
    assert events[-1][1] == "[DONE]"
    assert not any("usage" in json.loads(d) for _, d in events[:-1])
    _, _, raw = _post(
        fake_upstream.base_url,
        "/v1/chat/completions",
        {**base, "stream_options": {"include_usage": True}},
    )
    events = _sse(raw)
    usage_chunk = json.loads(events[-2][1])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["prompt_tokens"] > 0
    text = "".join(
        json.loads(d)["choices"][0]["delta"].get("content") or "" for _, d in events[:-2]
    )
    assert text == "Fake answer about: hello world."


def test_openai_models_and_embeddings_are_deterministic_unit_vectors(fake_upstream):
    with urllib.request.urlopen(fake_upstream.base_url + "/v1/models", timeout=5) as r:
        assert any(m["id"] == "gpt-4o-mini" for m in json.loads(r.read())["data"])
    body = {"model": "text-embedding-3-small", "input": ["same text", "other text"]}
    first = json.loads(_post(fake_upstream.base_url, "/v1/embeddings", body)[2])
    second = json.loads(_post(fake_upstream.base_url, "/v1/embeddings", body)[2])
    v1, v2 = first["data"][0]["embedding"], first["data"][1]["embedding"]
    assert v1 == second["data"][0]["embedding"]
    assert v1 != v2
    assert math.isclose(sum(x * x for x in v1), 1.0, rel_tol=1e-9)


def test_anthropic_stream_event_sequence(fake_upstream):
    _, _, raw = _post(
        fake_upstream.base_url,
        "/v1/messages",
        {
            "model": "claude-test",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
        },
    )
    names = [e for e, _ in _sse(raw) if e != "ping"]
    assert names[0] == "message_start"
    assert names[1] == "content_block_start"
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_cache_creation_then_read(fake_upstream):
    system = [{"type": "text", "text": "policy " * 1000, "cache_control": {"type": "ephemeral"}}]
    model = _model()
    usages = []
    for question in ("first?", "second?"):
        _, _, raw = _post(
            fake_upstream.base_url,
            "/v1/messages",
            {
                "model": model,
                "max_tokens": 50,
                "system": system,
                "messages": [{"role": "user", "content": question}],
            },
        )
        usages.append(json.loads(raw)["usage"])
    prefix_tokens = count_tokens("policy " * 1000)
    assert usages[0]["cache_creation_input_tokens"] == prefix_tokens
    assert usages[0]["cache_read_input_tokens"] == 0
    assert usages[1]["cache_read_input_tokens"] == prefix_tokens
    assert usages[1]["cache_creation_input_tokens"] == 0


def test_cohere_stream_event_sequence(fake_upstream):
    _, _, raw = _post(
        fake_upstream.base_url,
        "/v2/chat",
        {"model": "command-r", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    names = [e for e, _ in _sse(raw)]
    assert names[0] == "message-start" and names[1] == "content-start"
    assert names[-2:] == ["content-end", "message-end"]
    assert json.loads(_sse(raw)[-1][1])["delta"]["finish_reason"] == "COMPLETE"


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
        ("/v1/messages", {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
        ("/v2/chat", {"messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_header_injects_429_with_retry_after(fake_upstream, path, body):
    status, headers, _ = _post(
        fake_upstream.base_url, path, {"model": _model(), **body}, headers={"X-Fake-Fail": "429"}
    )
    assert status == 429
    assert headers["Retry-After"] == "2"


def test_malformed_is_200_with_invalid_json(fake_upstream):
    status, _, raw = _post(
        fake_upstream.base_url,
        "/v1/chat/completions",
        {"model": _model(), "messages": [{"role": "user", "content": "x [[fail:malformed]]"}]},
    )
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_stats_count_requests_per_path_and_model(fake_upstream):
    model = _model()
    for _ in range(3):
        _post(
            fake_upstream.base_url,
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": "x"}]},
        )
    _post(
        fake_upstream.base_url,
        "/v2/embed",
        {"model": model, "texts": ["a"], "input_type": "clustering"},
    )
    with urllib.request.urlopen(fake_upstream.base_url + "/__stats", timeout=5) as r:
        stats = json.loads(r.read())
    assert stats["requests"]["/v1/chat/completions"][model] == 3
    assert stats["requests"]["/v2/embed"][model] == 1
    assert fake_upstream.stats()["by_model"][model] == 4


def test_latency_and_fail_rate_options():
    server = start_fake_upstream(latency_ms=60, fail_rate=1.0, seed=7)
    try:
        started = time.perf_counter()
        status, _, _ = _post(
            server.base_url,
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        )
        elapsed = time.perf_counter() - started
        assert status in (429, 500)
        assert elapsed >= 0.06
        assert sum(server.stats()["faults"].values()) == 1
    finally:
        server.stop()


_STALL_CASES = [
    ("/v1/chat/completions", {}, b"data: [DONE]"),
    ("/v1/messages", {"max_tokens": 400}, b"message_stop"),
    ("/v2/chat", {}, b"message-end"),
]


@pytest.mark.parametrize("path,extra,final", _STALL_CASES)
@pytest.mark.parametrize("stream", [True, False])
def test_stall_sends_half_then_goes_silent_then_drops(path, extra, final, stream):
    """``[[fail:stall]]``: the first half of the answer arrives, then nothing for the server's
    ``timeout_sleep_s``, then the connection closes without the protocol's final event/bytes."""
    import socket

    server = start_fake_upstream(timeout_sleep_s=1.0)
    try:
        body = json.dumps({"model": _model(), "stream": stream, **extra, "messages": [
            {"role": "user", "content": "tell me [[len:40]] [[fail:stall]]"}]}).encode()
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        arrivals: list[tuple[float, bytes]] = []
        while chunk := sock.recv(65536):
            arrivals.append((time.monotonic(), chunk))
        closed = time.monotonic()
        sock.close()
    finally:
        server.stop()
    received = b"".join(c for _, c in arrivals)
    assert received.startswith(b"HTTP/1.1 200")
    assert b"alpha" in received or b"bravo" in received or b"token" in received  # part of it
    assert final not in received
    if not stream:
        head, _, payload = received.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert 0 < len(payload) < length  # announced the whole body, sent half
    assert 0.9 <= closed - arrivals[-1][0] < 5  # silent for the stall, then dropped


_PROTOCOLS = [
    ("/v1/chat/completions", {}),
    ("/v1/messages", {"max_tokens": 400}),
    ("/v2/chat", {}),
]


@pytest.mark.parametrize("path,extra", _PROTOCOLS)
def test_malformed_stream_sends_half_then_an_event_that_is_not_json(fake_upstream, path, extra):
    status, _, raw = _post(fake_upstream.base_url, path, {
        "model": _model(), "stream": True, **extra,
        "messages": [{"role": "user", "content": "tell me [[len:40]] [[fail:malformed]]"}]})
    assert status == 200
    events = _sse(raw)
    for _, data in events[:-1]:
        json.loads(data)  # the first half is well-formed
    assert len(events) > 3
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[-1][1])


@pytest.mark.parametrize("path,extra", _PROTOCOLS)
@pytest.mark.parametrize("stream", [True, False])
def test_bad_shape_is_json_without_the_protocols_fields(fake_upstream, path, extra, stream):
    status, _, raw = _post(fake_upstream.base_url, path, {
        "model": _model(), "stream": stream, **extra,
        "messages": [{"role": "user", "content": "x [[fail:bad_shape]]"}]})
    assert status == 200
    bodies = [json.loads(d) for _, d in _sse(raw)] if stream else [json.loads(raw)]
    assert len(bodies) == (3 if stream else 1)
    assert all(b == {"id": "broken", "unexpected": True} for b in bodies)
