
import pytest

from routing.difficulty import default_model
from routing.exceptions import (
    InfeasibleConstraints,
    InvalidRoutingInput,
    ModelNotAllowed,
    NoModelsAvailable,
)
from routing.router import GAMMA, expected_quality, route
from routing.types import RoutingRequest

from .conftest import make_candidate

EASY = "What is the capital of France?"
HARD = (
    "Let f be a continuous function on [0, 1] with f(0) = f(1). Prove that for every positive "
    "integer n there exist x, y in [0, 1] with |x - y| = 1/n and f(x) = f(y). Then determine, "
    "with justification, whether the statement holds for every real number r in (0, 1) in place "
    "of 1/n, and compute the set of all such r. " * 6
)


def _req(**kw):
    base = {"prompt": EASY, "input_tokens": 200, "max_output_tokens": 300}
    base.update(kw)
    return RoutingRequest(**base)


# --- explicit -----------------------------------------------------------------------------


def test_explicit_routes_only_to_override(catalogue):
    d = route(request=_req(mode="explicit", model_override="frontier"), candidates=catalogue)
    assert d.model == "frontier"
    assert d.fallbacks == ()
    assert d.mode == "explicit"


def test_explicit_disallowed_model_is_403(catalogue):
    with pytest.raises(ModelNotAllowed) as exc:
        route(
            request=_req(
                mode="explicit", model_override="frontier", allowed_models=frozenset({"small"})
            ),
            candidates=catalogue,
        )
    assert exc.value.status_code == 403


def test_explicit_unhealthy_override_never_goes_elsewhere(catalogue):
    cands = [
        c
        if c.name != "large"
        else make_candidate("large", price_in=2.5, price_out=10, quality=4.6, healthy=False)
        for c in catalogue
    ]
    with pytest.raises(NoModelsAvailable):
        route(request=_req(mode="explicit", model_override="large"), candidates=cands)


def test_explicit_unknown_model_lists_catalogue(catalogue):
    with pytest.raises(InvalidRoutingInput) as exc:
        route(request=_req(mode="explicit", model_override="nope"), candidates=catalogue)
    assert "small" in exc.value.valid_values


# --- autopilot / guided ---------------------------------------------------------------------


def test_autopilot_picks_cheapest_feasible(catalogue):
    d = route(request=_req(quality_threshold=3.5), candidates=catalogue)
    feasible = [c for c in d.considered if c.feasible]
    assert d.model == min(feasible, key=lambda c: c.estimated_cost).name
    # The tiny model (quality 2.0) can never reach 3.5 whatever the difficulty.
    assert d.model != "tiny"
    assert d.estimated_cost == pytest.approx((200 * 0.15 + 300 * 0.6) / 1e6)


def test_harder_prompt_needs_a_stronger_model(catalogue):
    model = default_model()
    assert model.predict(HARD) > model.predict(EASY)
    easy = route(request=_req(prompt=EASY, quality_threshold=3.8), candidates=catalogue)
    hard = route(request=_req(prompt=HARD, quality_threshold=3.8), candidates=catalogue)
    price = {c.name: c.input_price_per_m for c in catalogue}
    assert price[hard.model] >= price[easy.model]
    assert hard.difficulty > easy.difficulty


def test_unhealthy_candidates_are_skipped(catalogue):
    cands = [
        c
        if c.name != "small"
        else make_candidate("small", price_in=0.15, price_out=0.6, quality=3.9, healthy=False)
        for c in catalogue
    ]
    d = route(request=_req(quality_threshold=3.5), candidates=cands)
    assert d.model != "small"
    assert "small" not in d.fallbacks
    assert all(c.name != "small" for c in d.considered)


def test_all_unhealthy_is_503(catalogue):
    cands = [
        make_candidate(c.name, price_in=1, price_out=1, quality=4, healthy=False) for c in catalogue
    ]
    with pytest.raises(NoModelsAvailable) as exc:
        route(request=_req(), candidates=cands)
    assert exc.value.status_code == 503


def test_fallbacks_are_ranked_and_exclude_choice(catalogue):
    d = route(request=_req(quality_threshold=3.0), candidates=catalogue)
    assert d.model not in d.fallbacks
    costs = {c.name: c.estimated_cost for c in d.considered}
    feasible = {c.name for c in d.considered if c.feasible}
    feasible_fallbacks = [f for f in d.fallbacks if f in feasible]
    assert feasible_fallbacks == sorted(feasible_fallbacks, key=costs.__getitem__)


def test_latency_budget_excludes_slow_models(catalogue):
    d = route(request=_req(quality_threshold=4.5, latency_budget_ms=1000), candidates=catalogue)
    assert d.model == "large"
    assert "frontier" not in d.fallbacks


def test_guided_high_quality_preference_escalates(catalogue):
    low = route(request=_req(mode="guided", quality_preference="low"), candidates=catalogue)
    high = route(request=_req(mode="guided", quality_preference="max"), candidates=catalogue)
    price = {c.name: c.input_price_per_m for c in catalogue}
    assert price[high.model] > price[low.model]


def test_allowed_models_restrict_choice(catalogue):
    d = route(
        request=_req(quality_threshold=3.0, allowed_models=frozenset({"large", "frontier"})),
        candidates=catalogue,
    )
    assert d.model == "large"
    assert set(d.fallbacks) <= {"frontier"}


def test_context_window_filter(catalogue):
    cands = [
        *catalogue,
        make_candidate("long", price_in=1.0, price_out=2.0, quality=4.5, context=1_000_000),
    ]
    d = route(request=_req(input_tokens=500_000, quality_threshold=3.0), candidates=cands)
    assert d.model == "long"


def test_impossible_combination_names_constraint_and_closest(catalogue):
    with pytest.raises(InfeasibleConstraints) as exc:
        route(request=_req(quality_threshold=4.8, cost_budget=0.00001), candidates=catalogue)
    err = exc.value
    assert err.status_code == 400
    # No model costs <= $0.00001 for 200 in / 300 out tokens (tiny costs $0.00007), so the budget
    # is what cannot be met; the closest choice is the cheapest model reaching quality 4.8.
    assert err.constraint == "cost_budget"
    assert err.closest_feasible == "frontier"


def test_unreachable_quality_within_budget_names_quality(catalogue):
    with pytest.raises(InfeasibleConstraints) as exc:
        route(request=_req(quality_threshold=4.8, cost_budget=0.0001), candidates=catalogue)
    # Only tiny fits $0.0001; quality 4.8 is what cannot be met, tiny is the closest.
    assert exc.value.constraint == "quality_threshold"
    assert exc.value.closest_feasible == "tiny"


def test_soft_default_threshold_degrades_instead_of_failing():
    cands = [
        make_candidate("a", price_in=0.1, price_out=0.1, quality=2.0),
        make_candidate("b", price_in=0.2, price_out=0.2, quality=2.5),
    ]
    d = route(request=_req(), candidates=cands)
    assert d.model == "b"  # highest expected quality; no model reaches the default 3.5


def test_reason_names_inputs(catalogue):
    d = route(request=_req(prompt="Write a Python function to sort a list"), candidates=catalogue)
    assert "code" in d.reason
    assert f"{d.difficulty:.2f}" in d.reason
    for c in catalogue:
        assert c.name in d.reason
    assert f"Chose {d.model}" in d.reason


def test_task_type_per_model_quality_is_used():
    cands = [
        make_candidate("coder", price_in=0.2, price_out=0.2, quality=2.5, per_task={"code": 4.5}),
        make_candidate("general", price_in=1.0, price_out=1.0, quality=4.5),
    ]
    code = route(request=_req(prompt="Fix this bug in my python function"), candidates=cands)
    chat = route(request=_req(prompt="Tell me about the history of Rome"), candidates=cands)
    assert code.model == "coder"
    assert chat.model == "general"


def test_expected_quality_formula():
    assert expected_quality(catalogue_quality=4.0, difficulty=None, reference=0.2) == 4.0
    assert expected_quality(catalogue_quality=4.0, difficulty=0.2, reference=0.2) == 4.0
    hard = expected_quality(catalogue_quality=4.0, difficulty=0.7, reference=0.2)
    assert hard == pytest.approx(4.0 - GAMMA * 0.5 * 1.0)
    # Stronger models lose less on the same hard prompt.
    strong = expected_quality(catalogue_quality=4.8, difficulty=0.7, reference=0.2)
    assert 4.8 - strong < 4.0 - hard
    assert 0.0 <= expected_quality(catalogue_quality=0.5, difficulty=1.0, reference=0.0) <= 5.0
