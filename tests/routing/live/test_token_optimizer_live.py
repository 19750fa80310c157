"""The token optimizer in the pipeline: lossless always on long prompts, trimming only to fit."""

from __future__ import annotations

import httpx
import pytest

from inference.fake_upstream.behaviour import count_tokens as upstream_count
from inference.ledger import ledger
from inference.models import InferenceEvent, InferencePayload, ModelEndpoint
from inference.planning import OPTIMIZE_MIN_CHARS
from inference.selectors import invalidate_catalogue
from tests.routing.live.conftest import infer

pytestmark = [pytest.mark.redis]

CODE = "```python\ndef f(x):    \n\n\n\n    return x   \n```"


def _wasteful(paragraphs: int) -> str:
    parts = [f"Paragraph {i}: the report covers revenue, costs and hiring plans.   \n\n\n\n"
             for i in range(paragraphs)]
    dup = "This exact disclaimer paragraph is repeated in every pasted email thread.\n\n"
    return dup + "".join(parts) + dup + CODE + "\n\nSummarize the above."


def _event(request_id: str) -> tuple[InferenceEvent, str]:
    ledger.flush()
    return (InferenceEvent.objects.get(request_id=request_id),
            InferencePayload.objects.get(request_id=request_id).prompt)


# 900 paragraphs (~70k chars) takes the off-event-loop path.
@pytest.mark.parametrize("paragraphs", [40, 900])
def test_long_prompt_is_optimized_losslessly_and_code_is_kept(
        gateway, live_tenant, paragraphs) -> None:
    prompt = _wasteful(paragraphs)
    assert len(prompt) > OPTIMIZE_MIN_CHARS
    resp = infer(gateway, live_tenant.infer.raw, {"prompt": prompt, "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert {"token_optimization", "whitespace_markup_normalization",
            "repeated_block_removal"} <= set(data["optimization_techniques"])
    assert "history_trimming" not in data["optimization_techniques"]
    assert "token optimizer saved" in data["routing_reason"]
    # The upstream was billed for fewer tokens than the prompt as sent by the client.
    assert data["tokens_input"] < upstream_count(prompt)
    _, sent = _event(data["request_id"])
    assert "\n\n\n" not in sent.replace(CODE, "<code>")
    assert CODE in sent  # fenced code is never rewritten
    assert sent.count("This exact disclaimer paragraph") == 1


def test_short_prompt_is_not_touched(gateway, live_tenant) -> None:
    prompt = "Hello   \n\n\n\nthere"
    data = infer(gateway, live_tenant.infer.raw, {"prompt": prompt, "cache": "no-store"}).json()
    assert "token_optimization" not in data["optimization_techniques"]
    assert _event(data["request_id"])[1] == prompt


def _history(turns: int) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "You are the support assistant."}]
    for i in range(turns):
        # "a " is one token but few characters, so the gateway's generous size check passes
        # the untrimmed history too (the no-trimming case must reach the upstream).
        msgs.append({"role": "user", "content": f"Turn {i} question: " + "a " * 150})
        msgs.append({"role": "assistant", "content": f"Turn {i} answer: " + "b " * 150})
    msgs.append({"role": "user", "content": "So what is the final answer?"})
    return msgs


def _chat(base: str, key: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def small_window(gateway):  # type: ignore[no-untyped-def]
    ModelEndpoint.objects.filter(name="gpt-4o-mini").update(context_window=2_000)
    invalidate_catalogue()
    return gateway


def test_history_is_trimmed_to_fit_the_context_window(small_window, live_tenant) -> None:
    messages = _history(12)  # ~3,700 tokens against a 2,000-token window
    resp = _chat(small_window, live_tenant.infer.raw,
                 {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 100,
                  "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    event, sent = _event(resp.headers["x-request-id"])
    assert "history_trimming" in event.routing_reason
    assert "You are the support assistant." in sent  # system kept
    assert "So what is the final answer?" in sent  # latest turn kept
    assert "Turn 0 question" not in sent  # oldest turns dropped first
    assert resp.json()["usage"]["prompt_tokens"] <= 2_000 - 100


def test_high_quality_threshold_forbids_trimming(small_window, live_tenant) -> None:
    resp = _chat(small_window, live_tenant.infer.raw,
                 {"model": "gpt-4o-mini", "messages": _history(12), "max_tokens": 100,
                  "quality_threshold": 4.5, "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    event, sent = _event(resp.headers["x-request-id"])
    assert "history_trimming" not in event.routing_reason
    assert "Turn 0 question" in sent
