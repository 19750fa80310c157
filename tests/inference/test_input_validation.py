"""The hot-path endpoints refuse malformed input with a 400 that names the field, and text the
ledger cannot store never gets as far as the ledger (issues 16 and 17)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inference.ledger import ledger
from inference.models import InferenceEvent, InferencePayload

pytestmark = [pytest.mark.redis]


def post(base: str, key: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=30)


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (field, response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert {"type", "message", "code", "param"} <= set(body["error"])
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == field, body
    assert field in body["error"]["message"], body


def assert_ledger_still_writes(base: str, key: str) -> None:
    """The buffer flushes, and an ordinary request after the refused ones lands in the ledger."""
    ledger.flush()
    ok = post(base, key, "/infer", {"prompt": "Name one colour of the rainbow.",
                                     "cache": "no-store"})
    assert ok.status_code == 200, ok.text
    ledger.flush()
    assert InferenceEvent.objects.filter(request_id=ok.json()["request_id"]).exists()


NOT_NUMBERS = [{}, [], "hot", True, "0.5"]
NOT_INTEGERS = [{}, [], "lots", True, 1.5, "100"]


@pytest.mark.parametrize("field", ["temperature", "quality_threshold", "cost_budget"])
def test_infer_refuses_every_non_number(gateway, live_tenant, field: str) -> None:
    for value in NOT_NUMBERS:
        assert_refused(post(gateway, live_tenant.infer.raw, "/infer",
                            {"prompt": "hi", field: value}), field)
    assert_ledger_still_writes(gateway, live_tenant.infer.raw)


@pytest.mark.parametrize("field", ["max_tokens", "latency_budget_ms"])
def test_infer_refuses_every_non_integer(gateway, live_tenant, field: str) -> None:
    for value in NOT_INTEGERS:
        assert_refused(post(gateway, live_tenant.infer.raw, "/infer",
                            {"prompt": "hi", field: value}), field)


def test_infer_range_of_temperature_matches_chat(gateway, live_tenant) -> None:
    for path, body in (("/infer", {"prompt": "hi"}),
                       ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
                           {"role": "user", "content": "hi"}]})):
        response = post(gateway, live_tenant.infer.raw, path, {**body, "temperature": 2.5})
        assert_refused(response, "temperature")
        assert "between 0 and 2" in response.json()["error"]["message"]


@pytest.mark.parametrize(("field", "value"), [
    ("stream", "yes"), ("presence_penalty", "high"), ("frequency_penalty", True),
    ("seed", 1.5), ("logprobs", 1), ("top_logprobs", "3"), ("parallel_tool_calls", "no"),
    ("user", 42), ("model_override", {}), ("fallbacks", "gpt-4o")])
def test_chat_refuses_wrong_types(gateway, live_tenant, field: str, value: Any) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], field: value}
    assert_refused(post(gateway, live_tenant.infer.raw, "/v1/chat/completions", body), field)


NUL = "a\u0000b"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/infer", {"prompt": NUL}, "prompt"),
    ("/infer", {"prompt": "hi", "system": NUL}, "system"),
    ("/infer", {"prompt": "hi", "user_id": NUL}, "user_id"),
    ("/infer", {"prompt": "hi", "task_id": NUL}, "task_id"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": NUL}]}, "messages[0].content"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": [{"type": "text", "text": NUL}]}]},
     "messages[0].content[0].text"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "hi", "name": NUL}]}, "messages[0].name"),
    ("/v1/chat/completions", {"model": NUL, "messages": [
        {"role": "user", "content": "hi"}]}, "model"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "user": NUL, "messages": [
        {"role": "user", "content": "hi"}]}, "user"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": NUL}, "input"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ["ok", NUL]}, "input[1]"),
    ("/feedback", {"request_id": "req_1", "rating": 5, "comment": NUL}, "comment"),
    ("/feedback", {"request_id": NUL, "rating": 5}, "request_id"),
])
def test_nul_is_refused_naming_the_field(gateway, live_tenant, path: str, body: Any,
                                         field: str) -> None:
    response = post(gateway, live_tenant.infer.raw, path, body)
    assert_refused(response, field)
    assert "NUL" in response.json()["error"]["message"]


def test_nul_prompt_does_not_stop_accounting(gateway, live_tenant) -> None:
    """The reported sequence: a NUL prompt, then ordinary traffic and feedback."""
    assert_refused(post(gateway, live_tenant.infer.raw, "/infer", {"prompt": "x\u0000y"}),
                   "prompt")
    assert_ledger_still_writes(gateway, live_tenant.infer.raw)
    ok = post(gateway, live_tenant.infer.raw, "/infer", {"prompt": "Say yes.", "cache": "no-store"})
    feedback = post(gateway, live_tenant.infer.raw, "/feedback",
                    {"request_id": ok.json()["request_id"], "thumbs": "up"})
    assert feedback.status_code == 201, feedback.text


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/infer", {"prompt": "hi", "user_id": "bob\u202egnp.exe"}, "user_id"),
    ("/infer", {"prompt": "hi", "user_id": "bob\r\nX-Injected: 1"}, "user_id"),
    ("/infer", {"prompt": "hi", "model_override": "gpt-4o-mini\x1b[2J"}, "model_override"),
    ("/infer", {"prompt": "hi", "document_id": "doc\u2028two"}, "document_id"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "user": "eve\x07", "messages": [
        {"role": "user", "content": "hi"}]}, "user"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "fallbacks": ["gpt-4o\u2066"],
                              "messages": [{"role": "user", "content": "hi"}]}, "fallbacks[0]"),
    ("/feedback", {"request_id": "req\x85x", "rating": 5}, "request_id"),
])
def test_identifiers_refuse_control_and_bidi_characters(gateway, live_tenant, path: str,
                                                         body: Any, field: str) -> None:
    assert_refused(post(gateway, live_tenant.infer.raw, path, body), field)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/chat/completions", {"model": "m" * 121, "messages": [
        {"role": "user", "content": "hi"}]}, "model"),
    ("/infer", {"prompt": "hi", "model_override": "m" * 121}, "model_override"),
    ("/infer", {"prompt": "hi", "user_id": "u" * 201}, "user_id"),
])
def test_identifiers_longer_than_their_ledger_column_are_refused(gateway, live_tenant, path: str,
                                                                 body: Any, field: str) -> None:
    """An unknown model is recorded in the ledger under the name asked for: a name wider than
    the column made a row that could never be inserted."""
    assert_refused(post(gateway, live_tenant.infer.raw, path, body), field)
    assert_ledger_still_writes(gateway, live_tenant.infer.raw)


def test_prompt_text_keeps_newlines_tabs_and_other_controls(gateway, live_tenant) -> None:
    prompt = "line one\nline two\ttabbed\r\nform\x0cfeed \x1b[1mbold\x1b[0m \u202eevil"
    response = post(gateway, live_tenant.infer.raw, "/infer", {"prompt": prompt})
    assert response.status_code == 200, response.text
    ledger.flush()
    stored = InferencePayload.objects.get(request_id=response.json()["request_id"])
    assert stored.prompt == prompt
    assert all(" " <= c <= "~" for c in response.headers.get("x-asahi-cache-reason", ""))
