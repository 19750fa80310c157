"""From a request to a plan: the model chain (primary plus fallbacks), task type and the reason.

Explicit requests (a concrete `model`, or `model_override`) go to that model only, unless the client names
`fallbacks` (LiteLLM's field); `auto`, autopilot and guided go through the pure router in `routing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from asahi_project.errors import (
    InvalidRequest,
    ModelNotFound,
    NoModelsAvailable,
    PermissionDenied,
)
from inference.selectors import Catalogue
from inference.types import ModelInfo
from routing import exceptions as rx
from routing.router import route
from routing.task_detection import detect_task_type
from routing.types import Candidate, RoutingRequest

if TYPE_CHECKING:
    from inference.pipeline import GatewayCall, Plan

MAX_CHAIN = 3


def candidate_of(model: ModelInfo, *, healthy: bool = True) -> Candidate:
    return Candidate(
        name=model.name, provider=model.provider,
        input_price_per_m=float(model.input_price_per_m),
        output_price_per_m=float(model.output_price_per_m),
        cached_input_price_per_m=float(model.cached_input_price_per_m
                                       if model.cached_input_price_per_m is not None
                                       else model.input_price_per_m),
        context_window=model.context_window, quality=model.quality,
        typical_latency_ms=model.typical_latency_ms, healthy=healthy,
    )


def _not_found(name: str, catalogue: Catalogue) -> ModelNotFound:
    names = sorted(m.name for m in catalogue.chat_models())
    return ModelNotFound(f"model {name!r} does not exist; available: {', '.join(names)}, auto",
                         param="model")


def _routing_error(exc: rx.RoutingError) -> Exception:
    if isinstance(exc, rx.InvalidRoutingInput):
        return InvalidRequest(exc.message, param=exc.field, code="invalid_value",
                              details={"valid_values": list(exc.valid_values)})
    if isinstance(exc, rx.InfeasibleConstraints):
        return InvalidRequest(exc.message, code="infeasible_constraints", param=exc.constraint,
                              details={"closest_feasible": exc.closest_feasible})
    if isinstance(exc, rx.ModelNotAllowed):
        return PermissionDenied(str(exc), code="model_not_allowed")
    return NoModelsAvailable(str(exc))


async def plan_route(*, call: GatewayCall, catalogue: Catalogue, text: str, input_tokens_est: int,
                     allowed: Callable[..., str | None]) -> Plan:
    from inference.pipeline import Plan, output_cap

    r = call.routing
    requested = call.chat.model
    mode = r.mode or ("explicit" if (requested != "auto" or r.model_override) else "autopilot")
    if mode == "explicit":
        name = r.model_override or requested
        if name == "auto":
            raise InvalidRequest("routing_mode explicit needs a concrete model or model_override",
                                 param="model_override")
        model = catalogue.get(name)
        if model is None or model.kind != "chat":
            raise _not_found(name, catalogue)
        why = allowed(call.auth, model)
        if why:
            raise PermissionDenied(why, code="model_not_allowed")
        chain = [model]
        for fb in call.chat.extra.get("fallbacks") or []:
            fm = catalogue.get(str(fb))
            if fm is not None and fm.kind == "chat" and allowed(call.auth, fm) is None \
                    and fm not in chain:
                chain.append(fm)
        task = detect_task_type(text).name
        reason = (f"explicit: {model.name} requested by the client (task type {task}); "
                  f"no routing" + (f"; fallbacks: {', '.join(m.name for m in chain[1:])}"
                                    if len(chain) > 1 else ""))
        return Plan(chain=chain[:MAX_CHAIN], task_type=task, routing_mode="explicit",
                    reason=reason, max_output_tokens=output_cap(call, model),
                    input_tokens_est=input_tokens_est)

    from governance import enforcement

    eligible = [m for m in catalogue.chat_models() if allowed(call.auth, m) is None]
    if not eligible:
        raise NoModelsAvailable("no chat model is allowed by the organization's policy",
                                code="no_models_available")
    open_circuits = await enforcement.breaker().open_names(
        [f"{m.provider}:{m.name}" for m in eligible])
    candidates = [candidate_of(m, healthy=f"{m.provider}:{m.name}" not in open_circuits)
                  for m in eligible]
    req = RoutingRequest(
        prompt=text, mode=mode, latency_budget_ms=r.latency_budget_ms,
        quality_threshold=r.quality_threshold, cost_budget=r.cost_budget,
        quality_preference=r.quality_preference, latency_preference=r.latency_preference,
        model_override=r.model_override, input_tokens=input_tokens_est,
        max_output_tokens=call.chat.max_tokens or 512,
        allowed_models=frozenset(m.name for m in eligible),
    )
    try:
        decision = route(request=req, candidates=candidates)
    except rx.RoutingError as exc:
        raise _routing_error(exc) from exc
    chain = [catalogue.models[decision.model]]
    chain += [catalogue.models[n] for n in decision.fallbacks if n in catalogue.models]
    return Plan(chain=chain[:MAX_CHAIN], task_type=decision.task_type, routing_mode=decision.mode,
                reason=decision.reason, max_output_tokens=output_cap(call, chain[0]),
                input_tokens_est=input_tokens_est,
                techniques=[f"routing_{decision.mode}"])
