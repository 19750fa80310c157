import pytest

from routing.constraints import (
    DEFAULT_QUALITY_THRESHOLD,
    LATENCY_PREFERENCES,
    QUALITY_PREFERENCES,
    ROUTING_MODES,
    interpret,
)
from routing.exceptions import InvalidRoutingInput
from routing.types import RoutingRequest


def test_unknown_mode_lists_valid_values():
    with pytest.raises(InvalidRoutingInput) as exc:
        interpret(RoutingRequest(prompt="x", mode="turbo"))
    assert exc.value.field == "routing_mode"
    assert set(exc.value.valid_values) == set(ROUTING_MODES)
    assert exc.value.status_code == 400


@pytest.mark.parametrize("field", ["quality_preference", "latency_preference"])
def test_unknown_preference_lists_valid_values(field):
    with pytest.raises(InvalidRoutingInput) as exc:
        interpret(RoutingRequest(prompt="x", mode="guided", **{field: "extreme"}))
    assert exc.value.field == field
    expected = QUALITY_PREFERENCES if field == "quality_preference" else LATENCY_PREFERENCES
    assert set(exc.value.valid_values) == set(expected)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quality_threshold": 5.5}, "quality_threshold"),
        ({"quality_threshold": -1}, "quality_threshold"),
        ({"latency_budget_ms": 0}, "latency_budget_ms"),
        ({"cost_budget": -0.01}, "cost_budget"),
        ({"task_type": "astrology"}, "task_type"),
        ({"mode": "explicit"}, "model_override"),
    ],
)
def test_out_of_range_values_are_rejected(kwargs, field):
    with pytest.raises(InvalidRoutingInput) as exc:
        interpret(RoutingRequest(prompt="x", **kwargs))
    assert exc.value.field == field


def test_guided_preferences_map_to_thresholds():
    c = interpret(
        RoutingRequest(
            prompt="x", mode="guided", quality_preference="high", latency_preference="low"
        )
    )
    assert c.quality_threshold == QUALITY_PREFERENCES["high"]
    assert c.quality_is_hard
    assert c.latency_budget_ms == LATENCY_PREFERENCES["low"]


def test_explicit_numbers_override_preferences():
    c = interpret(
        RoutingRequest(
            prompt="x",
            mode="guided",
            quality_preference="low",
            quality_threshold=4.4,
            latency_preference="low",
            latency_budget_ms=5000,
        )
    )
    assert c.quality_threshold == 4.4
    assert c.latency_budget_ms == 5000


def test_default_threshold_is_soft():
    c = interpret(RoutingRequest(prompt="x"))
    assert c.quality_threshold == DEFAULT_QUALITY_THRESHOLD
    assert not c.quality_is_hard
    assert c.latency_budget_ms is None


def test_mode_and_preferences_are_case_insensitive():
    c = interpret(RoutingRequest(prompt="x", mode=" Guided ", quality_preference="MAX"))
    assert c.mode == "guided"
    assert c.quality_threshold == QUALITY_PREFERENCES["max"]
