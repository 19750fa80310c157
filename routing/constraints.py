"""Turn /infer routing fields into explicit, validated constraints.

Mapping (guided mode; in autopilot the same fields are honoured when given):

    quality_preference  low -> 2.5   medium -> 3.5   high -> 4.2   max -> 4.6   (0-5 scale)
    latency_preference  low -> 800 ms   medium -> 2500 ms   high -> no latency limit
                        ("low" = the caller wants low latency; the level names what they want)

Explicit numbers win over preferences (`quality_threshold` over `quality_preference`,
`latency_budget_ms` over `latency_preference`). With neither, the quality threshold is
DEFAULT_QUALITY_THRESHOLD and it is *soft*: if no model reaches it, the router takes the best model
within the hard budgets instead of failing. A threshold the caller stated is *hard*.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.exceptions import InvalidRoutingInput
from routing.task_detection import TASK_TYPES
from routing.types import RoutingRequest

ROUTING_MODES: tuple[str, ...] = ("autopilot", "guided", "explicit")
QUALITY_PREFERENCES: dict[str, float] = {"low": 2.5, "medium": 3.5, "high": 4.2, "max": 4.6}
LATENCY_PREFERENCES: dict[str, int | None] = {"low": 800, "medium": 2500, "high": None}
DEFAULT_QUALITY_THRESHOLD = 3.5
QUALITY_MIN, QUALITY_MAX = 0.0, 5.0


@dataclass(frozen=True)
class Constraints:
    """What the router must satisfy, with where each value came from (for the reason text)."""

    mode: str
    quality_threshold: float
    quality_is_hard: bool
    latency_budget_ms: int | None
    cost_budget: float | None
    model_override: str | None
    allowed_models: frozenset[str] | None
    task_type: str | None
    quality_source: str  # "quality_threshold", "quality_preference=high" or "default"
    latency_source: str


def interpret(request: RoutingRequest) -> Constraints:
    """Validate the request's routing fields and resolve them into Constraints."""
    mode = (request.mode or "autopilot").strip().lower()
    if mode not in ROUTING_MODES:
        raise InvalidRoutingInput(
            "routing_mode", f"Unknown routing_mode {request.mode!r}.", ROUTING_MODES
        )
    qpref = _norm(request.quality_preference)
    if qpref is not None and qpref not in QUALITY_PREFERENCES:
        raise InvalidRoutingInput(
            "quality_preference",
            f"Unknown quality_preference {request.quality_preference!r}.",
            tuple(QUALITY_PREFERENCES),
        )
    lpref = _norm(request.latency_preference)
    if lpref is not None and lpref not in LATENCY_PREFERENCES:
        raise InvalidRoutingInput(
            "latency_preference",
            f"Unknown latency_preference {request.latency_preference!r}.",
            tuple(LATENCY_PREFERENCES),
        )
    if request.quality_threshold is not None and not (
        QUALITY_MIN <= request.quality_threshold <= QUALITY_MAX
    ):
        raise InvalidRoutingInput(
            "quality_threshold",
            f"quality_threshold must be between {QUALITY_MIN} and {QUALITY_MAX}.",
        )
    if request.latency_budget_ms is not None and request.latency_budget_ms <= 0:
        raise InvalidRoutingInput("latency_budget_ms", "latency_budget_ms must be positive.")
    if request.cost_budget is not None and request.cost_budget <= 0:
        raise InvalidRoutingInput("cost_budget", "cost_budget must be a positive USD amount.")
    if request.input_tokens < 0 or request.max_output_tokens < 0:
        raise InvalidRoutingInput("max_tokens", "token counts must not be negative.")
    task = _norm(request.task_type)
    if task is not None and task not in TASK_TYPES:
        raise InvalidRoutingInput(
            "task_type", f"Unknown task_type {request.task_type!r}.", TASK_TYPES
        )
    override = (request.model_override or "").strip() or None
    if mode == "explicit" and override is None:
        raise InvalidRoutingInput(
            "model_override", "routing_mode 'explicit' requires model_override."
        )

    if request.quality_threshold is not None:
        quality, q_hard, q_src = float(request.quality_threshold), True, "quality_threshold"
    elif qpref is not None:
        quality, q_hard, q_src = QUALITY_PREFERENCES[qpref], True, f"quality_preference={qpref}"
    else:
        quality, q_hard, q_src = DEFAULT_QUALITY_THRESHOLD, False, "default"

    latency: int | None
    if request.latency_budget_ms is not None:
        latency, l_src = int(request.latency_budget_ms), "latency_budget_ms"
    elif lpref is not None:
        latency, l_src = LATENCY_PREFERENCES[lpref], f"latency_preference={lpref}"
    else:
        latency, l_src = None, "none"

    return Constraints(
        mode=mode,
        quality_threshold=quality,
        quality_is_hard=q_hard,
        latency_budget_ms=latency,
        cost_budget=request.cost_budget,
        model_override=override,
        allowed_models=request.allowed_models,
        task_type=task,
        quality_source=q_src,
        latency_source=l_src,
    )


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    return v or None
