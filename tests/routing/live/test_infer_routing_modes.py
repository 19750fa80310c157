"""/infer routing modes end to end: reasons name their inputs, explicit never reroutes, errors."""

from __future__ import annotations

import re

import pytest

from governance.services import policy_update
from inference.catalogue import MODELS
from inference.ledger import ledger
from inference.models import InferenceEvent
from routing.constraints import QUALITY_PREFERENCES
from tests.routing.live.conftest import infer

pytestmark = [pytest.mark.redis]

PROMPT = "Write a Python function that returns the n-th Fibonacci number iteratively."
CHAT_MODELS = {m.name for m in MODELS if m.kind == "chat"}


def _scored(reason: str, model: str) -> tuple[float, float]:
    """(expected quality, estimated cost) the router printed for `model`."""
    match = re.search(rf"{re.escape(model)} \(q~([0-9.]+), \$([0-9.]+)", reason)
    assert match, f"{model} not in {reason}"
    return float(match.group(1)), float(match.group(2))


def test_autopilot_reason_names_task_difficulty_candidates_and_why(gateway, live_tenant) -> None:
    resp = infer(gateway, live_tenant.infer.raw, {"prompt": PROMPT, "routing_mode": "autopilot",
                                                  "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    reason = data["routing_reason"]
    assert reason.startswith("autopilot:")
    assert f"task type {data['task_type']}" in reason and data["task_type"] == "code"
    assert "predicted difficulty" in reason
    considered = [name for name in CHAT_MODELS if f"{name} (q~" in reason]
    assert len(considered) >= 3  # the candidates it weighed
    assert f"Chose {data['model_used']}: cheapest of" in reason  # and why


def test_guided_quality_preference_sets_a_hard_threshold(gateway, live_tenant) -> None:
    resp = infer(gateway, live_tenant.infer.raw, {
        "prompt": PROMPT, "routing_mode": "guided", "quality_preference": "high",
        "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    reason = data["routing_reason"]
    assert reason.startswith("guided:")
    assert f"quality threshold {QUALITY_PREFERENCES['high']:g} (quality_preference=high)" in reason
    assert "Considered" in reason and f"Chose {data['model_used']}" in reason
    q_high, cost_high = _scored(reason, data["model_used"])
    assert q_high >= QUALITY_PREFERENCES["high"]
    low = infer(gateway, live_tenant.infer.raw, {
        "prompt": PROMPT, "routing_mode": "guided", "quality_preference": "low",
        "cache": "no-store"}).json()
    assert "quality_preference=low" in low["routing_reason"]
    q_low, cost_low = _scored(low["routing_reason"], low["model_used"])
    assert q_low >= QUALITY_PREFERENCES["low"]
    # A lower bar admits more candidates, so the cheapest one cannot be dearer.
    assert cost_low <= cost_high


def test_explicit_uses_the_override_and_says_so(gateway, live_tenant) -> None:
    resp = infer(gateway, live_tenant.infer.raw, {
        "prompt": PROMPT, "routing_mode": "explicit", "model_override": "claude-haiku-4-5",
        "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["model_used"] == "claude-haiku-4-5"
    assert data["routing_reason"].startswith("explicit: claude-haiku-4-5 requested")
    assert "task type code" in data["routing_reason"]
    assert "routing_autopilot" not in data["optimization_techniques"]


def test_explicit_never_falls_back_when_its_upstream_fails(gateway, live_tenant) -> None:
    resp = infer(gateway, live_tenant.infer.raw, {
        "prompt": "Say hi [[fail:500@gpt-4o-mini]]", "model_override": "gpt-4o-mini",
        "cache": "no-store"})
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"].startswith("upstream_")
    ledger.flush()
    events = list(InferenceEvent.objects.filter(organization=live_tenant.org))
    assert [(e.model, e.status) for e in events] == [("gpt-4o-mini", "error")]
    assert "fell back" not in events[0].routing_reason


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("routing_mode", "yolo", ("autopilot", "guided", "explicit")),
    ("quality_preference", "ultra", ("low", "medium", "high", "max")),
])
def test_unknown_mode_or_preference_is_400_listing_valid_values(
        gateway, live_tenant, field, value, valid) -> None:
    resp = infer(gateway, live_tenant.infer.raw, {"prompt": PROMPT, field: value})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["param"] == field
    assert all(v in err["message"] for v in valid)


def test_override_outside_the_policy_is_403(gateway, live_tenant) -> None:
    policy_update(organization=live_tenant.org, actor="test",
                  changes={"allowed_models": ["gpt-4o-mini"]})
    resp = infer(gateway, live_tenant.infer.raw, {"prompt": PROMPT, "model_override": "gpt-5"})
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "model_not_allowed"
    ok = infer(gateway, live_tenant.infer.raw, {"prompt": PROMPT, "model_override": "gpt-4o-mini",
                                                "cache": "no-store"})
    assert ok.status_code == 200
    auto = infer(gateway, live_tenant.infer.raw, {"prompt": PROMPT, "cache": "no-store"}).json()
    assert auto["model_used"] == "gpt-4o-mini"  # the only allowed candidate


def test_no_candidate_at_all_is_503(gateway, live_tenant) -> None:
    policy_update(organization=live_tenant.org, actor="test",
                  changes={"allowed_models": ["no-such-model"]})
    resp = infer(gateway, live_tenant.infer.raw, {"prompt": PROMPT})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "no_models_available"
