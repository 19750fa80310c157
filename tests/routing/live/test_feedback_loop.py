"""Feedback → folded quality → routing: a rating on a real request moves what the router sees."""

from __future__ import annotations

import re

import httpx
import pytest

from inference.models import Feedback
from inference.selectors import get_catalogue
from routing.feedback import PRIOR_WEIGHT
from routing.models import QualityEstimate
from routing.selectors import quality_estimates
from routing.services import fold_pending_feedback
from routing.tasks import fold_feedback_task
from tests.routing.live.conftest import infer

pytestmark = [pytest.mark.redis]

PROMPT = "Summarize in one sentence: the quarterly report shows revenue grew while costs fell."


def _q_in_reason(reason: str, model: str) -> float:
    """The expected quality the router printed for `model` in its reason."""
    match = re.search(rf"{re.escape(model)} \(q~([0-9.]+)", reason)
    assert match, f"{model} not in reason: {reason}"
    return float(match.group(1))


def test_feedback_on_a_real_request_changes_the_quality_given_to_the_router(
        gateway, live_tenant) -> None:
    key = live_tenant.infer.raw
    auto = {"prompt": PROMPT, "cache": "no-store"}
    first = infer(gateway, key, auto)
    assert first.status_code == 200, first.text
    task = first.json()["task_type"]
    q_before = _q_in_reason(first.json()["routing_reason"], "gpt-4o-mini")

    rated = infer(gateway, key, {"prompt": PROMPT, "model_override": "gpt-4o-mini",
                                 "cache": "no-store"})
    assert rated.status_code == 200, rated.text
    assert rated.json()["task_type"] == task
    fb = httpx.post(f"{gateway}/feedback", headers={"Authorization": f"Bearer {key}"},
                    json={"request_id": rated.json()["request_id"], "thumbs": "down",
                          "comment": "missed the point"}, timeout=30)
    assert fb.status_code == 201, fb.text
    assert fb.json()["model"] == "gpt-4o-mini"

    result = fold_feedback_task.apply().get()
    assert result == {"folded": 1, "estimates": 1}
    prior = get_catalogue().models["gpt-4o-mini"].quality_for(task)
    row = QualityEstimate.objects.get(model="gpt-4o-mini", task_type=task)
    assert row.count == 1
    assert row.mean == pytest.approx((PRIOR_WEIGHT * prior + 1) / (PRIOR_WEIGHT + 1))
    assert Feedback.objects.get(request_id=rated.json()["request_id"]).folded

    # The planner now passes the folded value, and the router's expected quality drops with it.
    from inference.planning import build_candidates

    catalogue = get_catalogue()
    (cand,) = build_candidates(eligible=[catalogue.models["gpt-4o-mini"]], open_circuits=set(),
                               quality=quality_estimates())
    assert cand.quality_for(task) == pytest.approx(row.mean)
    after = infer(gateway, key, auto)
    assert after.status_code == 200, after.text
    assert _q_in_reason(after.json()["routing_reason"], "gpt-4o-mini") < q_before


def test_folding_is_idempotent_and_incremental(gateway, live_tenant) -> None:
    org = live_tenant.org
    for i, rating in enumerate((5, 1, 2)):
        Feedback.objects.create(organization=org, request_id=f"r{i}", model="gpt-4o",
                                task_type="code", rating=rating)
    first = fold_pending_feedback()
    assert first.folded == 3
    again = fold_pending_feedback()  # nothing left unfolded: a retry must not count twice
    assert again.folded == 0
    row = QualityEstimate.objects.get(model="gpt-4o", task_type="code")
    assert row.count == 3

    Feedback.objects.create(organization=org, request_id="r3", model="gpt-4o", task_type="code",
                            rating=4)
    fold_pending_feedback(batch_size=1)
    row.refresh_from_db()
    prior = get_catalogue().models["gpt-4o"].quality_for("code")
    # Folding 3 then 1 equals folding all 4 at once.
    assert row.count == 4
    assert row.mean == pytest.approx((PRIOR_WEIGHT * prior + 5 + 1 + 2 + 4) / (PRIOR_WEIGHT + 4))
    assert not Feedback.objects.filter(folded=False).exists()


def test_blank_task_type_folds_into_the_default_quality(gateway, live_tenant) -> None:
    Feedback.objects.create(organization=live_tenant.org, request_id="x", model="gpt-4o",
                            task_type="", rating=1)
    fold_pending_feedback()
    assert QualityEstimate.objects.filter(model="gpt-4o", task_type="default", count=1).exists()


def test_routing_decision_changes_when_folded_quality_drops(gateway, live_tenant) -> None:
    key = live_tenant.infer.raw
    body = {"prompt": PROMPT, "cache": "no-store"}
    before = infer(gateway, key, body).json()
    chosen, task = before["model_used"], before["task_type"]
    # Many poor ratings for the chosen model on this task type (the data a bad week would leave).
    Feedback.objects.bulk_create([
        Feedback(organization=live_tenant.org, request_id=f"bad-{i}", model=chosen,
                 task_type=task, rating=1) for i in range(80)])
    assert fold_pending_feedback().folded == 80

    after = infer(gateway, key, body).json()
    assert after["model_used"] != chosen
    assert _q_in_reason(after["routing_reason"], chosen) < _q_in_reason(
        before["routing_reason"], chosen)
    assert "fails quality" in after["routing_reason"].split(f"{chosen} (", 1)[1].split(")")[0]
