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


# Summaries of different lengths: the cheap model that wins them all is the one users will rate.
SUMMARY_PROMPTS = [
    "Summarize in one sentence: the quarterly report shows revenue grew while costs fell.",
    "Summarize: our team shipped the billing migration two days late because of a schema bug.",
    "Summarize briefly: the city council approved the new bike lanes after a long debate "
    "about parking, safety and the cost of repainting the main avenue.",
    "Give a short summary of this note: the warehouse inventory count is Friday; everyone "
    "on the morning shift should arrive thirty minutes early and bring their badge.",
]


def _traffic(gateway: str, key: str) -> list[tuple[str, str]]:
    """(model used, request id) for two rounds of the summary prompts, routed by autopilot."""
    out = []
    for _ in range(2):
        for prompt in SUMMARY_PROMPTS:
            resp = infer(gateway, key, {"prompt": prompt, "cache": "no-store"})
            assert resp.status_code == 200, resp.text
            out.append((resp.json()["model_used"], resp.json()["request_id"]))
    return out


def test_traffic_shifts_away_from_a_model_whose_ratings_drop_within_one_fold(
        gateway, live_tenant) -> None:
    from asahi_project.celery import app
    from routing.selectors import QUALITY_TTL_SECONDS

    key = live_tenant.infer.raw
    auth = {"Authorization": f"Bearer {key}"}
    before = _traffic(gateway, key)
    favourite, share_before = max(
        ((m, sum(1 for used, _ in before if used == m) / len(before)) for m, _ in before),
        key=lambda pair: pair[1])
    assert share_before >= 0.5, before

    # Users rate the favourite's answers poorly through the public endpoint: the autopilot answers
    # it gave, plus answers asked of it by name, 16 ratings of 1 in all.
    rated = [rid for used, rid in before if used == favourite]
    while len(rated) < 16:
        resp = infer(gateway, key, {"prompt": SUMMARY_PROMPTS[len(rated) % 4],
                                    "model_override": favourite, "cache": "no-store"})
        assert resp.status_code == 200, resp.text
        rated.append(resp.json()["request_id"])
    for rid in rated:
        fb = httpx.post(f"{gateway}/feedback", headers=auth, json={"request_id": rid, "rating": 1},
                        timeout=30)
        assert fb.status_code == 201, fb.text

    # Nothing moves before the fold: ratings are stored, not yet applied.
    assert {m for m, _ in _traffic(gateway, key)} == {m for m, _ in before}

    # One run of the scheduled fold (what beat starts every `schedule` seconds). Other processes see
    # it within QUALITY_TTL_SECONDS, well inside one fold interval; this one at once.
    schedule = app.conf.beat_schedule["routing-fold-feedback"]
    assert schedule["task"] == "routing.fold_feedback"
    assert schedule["schedule"] > QUALITY_TTL_SECONDS
    assert fold_feedback_task.apply().get()["folded"] == len(rated)

    after = _traffic(gateway, key)
    share_after = sum(1 for used, _ in after if used == favourite) / len(after)
    assert share_after < share_before
    assert share_after == 0.0, after  # 16 ratings of 1 against 20 pseudo-ratings: quality < 3.5
    moved_to = {used for used, _ in after}
    assert moved_to and favourite not in moved_to


def _fold_queue() -> str:
    # A queue of its own: other tests leave tasks (e.g. cache index builds) in the default queue,
    # and this worker must run only the fold it is sent.
    import os

    return f"fold-test-{os.getpid()}"


@pytest.fixture
def celery_worker(gateway, tmp_path):  # type: ignore[no-untyped-def]
    """A real Celery worker process on the test database and the test Redis broker."""
    import os
    import subprocess
    import sys

    from django.conf import settings
    from django.db import connection

    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("needs a Redis broker (REDIS_URL) for a separate worker process")
    db = connection.settings_dict
    host = f"?host={db['HOST']}" if str(db["HOST"]).startswith("/") else ""
    netloc = f"{db['USER']}@" + ("" if host else f"{db['HOST']}:{db['PORT'] or 5432}")
    env = {**os.environ, "DATABASE_URL": f"postgresql://{netloc}/{db['NAME']}{host}",
           "CELERY_TASK_ALWAYS_EAGER": "0", "DJANGO_SETTINGS_MODULE": "asahi_project.settings"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "asahi_project", "worker", "--pool", "solo",
             "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat",
             "-n", f"fold-test-{os.getpid()}@%h", "-Q", _fold_queue()],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_a_real_worker_folds_posted_ratings_and_the_gateway_routes_away(
        gateway, live_tenant, celery_worker, monkeypatch) -> None:
    import time

    from routing import selectors

    key = live_tenant.infer.raw
    before = _traffic(gateway, key)
    favourite = max({m for m, _ in before}, key=lambda m: sum(1 for u, _ in before if u == m))
    rated = [rid for used, rid in before if used == favourite]
    while len(rated) < 16:
        resp = infer(gateway, key, {"prompt": SUMMARY_PROMPTS[len(rated) % 4],
                                    "model_override": favourite, "cache": "no-store"})
        assert resp.status_code == 200, resp.text
        rated.append(resp.json()["request_id"])
    for rid in rated:
        fb = httpx.post(f"{gateway}/feedback", headers={"Authorization": f"Bearer {key}"},
                        json={"request_id": rid, "rating": 1}, timeout=30)
        assert fb.status_code == 201, fb.text

    # What beat sends every fold interval; the worker process runs it.
    fold_feedback_task.apply_async(queue=_fold_queue())
    deadline = time.monotonic() + 90
    while Feedback.objects.filter(folded=False).exists():
        assert celery_worker.poll() is None, celery_worker.log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the worker did not fold within 90 s"
        time.sleep(0.2)
    (row,) = QualityEstimate.objects.filter(model=favourite)  # all summaries: one task type
    assert row.count == len(rated)

    # The gateway (another process's view) picks the fold up when its snapshot expires: 30 s in
    # production (inside one 300 s fold interval); shortened here so the test does not sleep.
    monkeypatch.setattr(selectors, "QUALITY_TTL_SECONDS", 0.5)
    time.sleep(0.6)
    after = _traffic(gateway, key)
    assert favourite not in {used for used, _ in after}, after
