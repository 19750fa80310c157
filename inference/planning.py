"""From a request to a plan: the model chain (primary plus fallbacks), task type and the reason.

Explicit requests (a concrete `model`, or `model_override`) go to that model only, unless the client names
`fallbacks` (LiteLLM's field); `auto`, autopilot and guided go through the pure router in `routing`.

Before the decision the request is prepared, in this order (so the cache key covers the final prompt):

1. feature enrichment: the organization's / user's context prepended as a system message
   (`routing.enricher`, time-boxed, skipped when slow);
2. token optimization for long prompts (`routing.token_optimizer`): lossless steps always, history
   trimming only when the prompt would not fit the target context window and the requested quality
   allows it.

Candidate quality is the catalogue prior overlaid with the feedback-folded estimates
(`routing.selectors.aquality_estimates`, cached per process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asahi_project.errors import (
    InvalidRequest,
    ModelNotFound,
    NoModelsAvailable,
    PermissionDenied,
)
from inference import pricing
from inference.providers.types import ChatMessage
from inference.selectors import Catalogue
from inference.types import ModelInfo
from routing import exceptions as rx
from routing.constraints import QUALITY_PREFERENCES
from routing.router import route
from routing.selectors import QualitySnapshot, aquality_estimates, effective_quality
from routing.task_detection import detect_task_type
from routing.token_optimizer import Message, optimize
from routing.types import Candidate, RoutingRequest

if TYPE_CHECKING:
    from inference.pipeline import GatewayCall, Plan

MAX_CHAIN = 3
# Below this many characters the optimizer is skipped: the saving cannot pay for the tokenizer pass.
OPTIMIZE_MIN_CHARS = 2_000
DEFAULT_ROUTING_OUTPUT = 512
# Above this the tokenizer passes take tens of ms: run them off the event loop.
OPTIMIZE_IN_THREAD_CHARS = 50_000


def candidate_of(model: ModelInfo, *, healthy: bool = True,
                 quality: QualitySnapshot | None = None) -> Candidate:
    """The router's view of a catalogue model; `quality` overlays folded feedback estimates."""
    q = (effective_quality(model=model.name, catalogue_quality=model.quality, snapshot=quality)
         if quality is not None else model.quality)
    return Candidate(
        name=model.name, provider=model.provider,
        input_price_per_m=float(model.input_price_per_m),
        output_price_per_m=float(model.output_price_per_m),
        cached_input_price_per_m=float(model.cached_input_price_per_m
                                       if model.cached_input_price_per_m is not None
                                       else model.input_price_per_m),
        context_window=model.context_window, quality=q,
        typical_latency_ms=model.typical_latency_ms, healthy=healthy,
    )


def build_candidates(*, eligible: Sequence[ModelInfo], open_circuits: set[str] | frozenset[str],
                     quality: QualitySnapshot) -> list[Candidate]:
    """What `plan_route` passes to the router (exposed so tests can see the quality it uses)."""
    return [candidate_of(m, healthy=f"{m.provider}:{m.name}" not in open_circuits,
                         quality=quality) for m in eligible]


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


# --- Request preparation: enrichment and token optimization ---------------------------------------

@dataclass
class Preparation:
    """What preparing the prompt did (techniques for the response, a note for the reason)."""

    techniques: list[str]
    notes: list[str]
    tokens_saved: int = 0
    enriched: bool = False


async def _enrich(call: GatewayCall, prep: Preparation) -> None:
    from routing.enricher import APPLIED, enrich

    outcome = await enrich(org_id=call.auth.org_id, user=call.chat.user)
    if outcome.technique:
        prep.techniques.append(outcome.technique)
    if outcome.technique == APPLIED and outcome.text:
        call.chat.messages = [ChatMessage(role="system", content=outcome.text),
                              *call.chat.messages]
        prep.enriched = True
        prep.notes.append("enriched with the organization's context")


def _effective_threshold(call: GatewayCall) -> float | None:
    r = call.routing
    if r.quality_threshold is not None:
        return float(r.quality_threshold)
    pref = (r.quality_preference or "").strip().lower()
    return QUALITY_PREFERENCES.get(pref)


def _plain(messages: Sequence[ChatMessage]) -> bool:
    """Only plain-text turns are rewritten; tool calls, names and image parts stay untouched."""
    return all(isinstance(m.content, str) and not m.tool_calls and m.tool_call_id is None
               and m.name is None for m in messages)


def optimize_messages(*, call: GatewayCall, target: ModelInfo, reserve_output_tokens: int,
                      prep: Preparation) -> None:
    """Run the token optimizer on long prompts; replace the messages only if tokens were saved."""
    msgs = call.chat.messages
    if sum(len(m.text()) for m in msgs) < OPTIMIZE_MIN_CHARS or not _plain(msgs):
        return
    result = optimize(
        messages=[Message(role=m.role, content=m.text()) for m in msgs],
        model=target.name, context_window=target.context_window,
        reserve_output_tokens=reserve_output_tokens,
        quality_threshold=_effective_threshold(call),
    )
    if result.saved_tokens <= 0:
        return
    call.chat.messages = [ChatMessage(role=m.role, content=m.content)  # type: ignore[arg-type]
                          for m in result.messages]
    prep.tokens_saved = result.saved_tokens
    prep.techniques += ["token_optimization", *result.techniques]
    prep.notes.append(f"token optimizer saved {result.saved_tokens} tokens "
                      f"({', '.join(result.techniques)})")


async def _optimize(*, call: GatewayCall, target: ModelInfo, reserve_output_tokens: int,
                    prep: Preparation) -> None:
    def run() -> None:
        optimize_messages(call=call, target=target, reserve_output_tokens=reserve_output_tokens,
                          prep=prep)

    if sum(len(m.text()) for m in call.chat.messages) > OPTIMIZE_IN_THREAD_CHARS:
        await asyncio.to_thread(run)
    else:
        run()


def _finish_reason(reason: str, prep: Preparation) -> str:
    return reason + "".join(f"; {n}" for n in prep.notes)


def _prompt_estimate(call: GatewayCall, prep: Preparation) -> tuple[str, int]:
    """(text to route on, input token estimate) after preparation.

    The estimate covers every message sent; the routing text leaves out the enrichment message, so
    task type and difficulty describe the user's prompt, not the house context.
    """
    messages = call.chat.messages
    full = "\n".join(m.text() for m in messages)
    routed = "\n".join(m.text() for m in messages[1:]) if prep.enriched else full
    return routed, pricing.estimate_tokens(len(full), len(messages))


async def plan_route(*, call: GatewayCall, catalogue: Catalogue, text: str, input_tokens_est: int,
                     allowed: Callable[..., str | None]) -> Plan:
    from inference.pipeline import Plan, output_cap

    r = call.routing
    requested = call.chat.model
    mode = r.mode or ("explicit" if (requested != "auto" or r.model_override) else "autopilot")
    prep = Preparation(techniques=[], notes=[])
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
        await _enrich(call, prep)
        await _optimize(call=call, target=model, prep=prep,
                        reserve_output_tokens=output_cap(call, model))
        if prep.techniques:
            text, input_tokens_est = _prompt_estimate(call, prep)
        reason = (f"explicit: {model.name} requested by the client (task type {task}); "
                  f"no routing" + (f"; fallbacks: {', '.join(m.name for m in chain[1:])}"
                                    if len(chain) > 1 else ""))
        return Plan(chain=chain[:MAX_CHAIN], task_type=task, routing_mode="explicit",
                    reason=_finish_reason(reason, prep), max_output_tokens=output_cap(call, model),
                    input_tokens_est=input_tokens_est, techniques=prep.techniques)

    from governance import enforcement

    eligible = [m for m in catalogue.chat_models() if allowed(call.auth, m) is None]
    if not eligible:
        raise NoModelsAvailable("no chat model is allowed by the organization's policy",
                                code="no_models_available")
    await _enrich(call, prep)
    max_output = call.chat.max_tokens or DEFAULT_ROUTING_OUTPUT
    # Trim only as far as the roomiest allowed model needs; the router then picks among those that fit.
    roomiest = max(eligible, key=lambda m: (m.context_window, m.name))
    await _optimize(call=call, target=roomiest, reserve_output_tokens=max_output, prep=prep)
    if prep.techniques:
        text, input_tokens_est = _prompt_estimate(call, prep)
    open_circuits = await enforcement.breaker().open_names(
        [f"{m.provider}:{m.name}" for m in eligible])
    candidates = build_candidates(eligible=eligible, open_circuits=set(open_circuits),
                                  quality=await aquality_estimates())
    req = RoutingRequest(
        prompt=text, mode=mode, latency_budget_ms=r.latency_budget_ms,
        quality_threshold=r.quality_threshold, cost_budget=r.cost_budget,
        quality_preference=r.quality_preference, latency_preference=r.latency_preference,
        model_override=r.model_override, input_tokens=input_tokens_est,
        max_output_tokens=max_output,
        allowed_models=frozenset(m.name for m in eligible),
    )
    try:
        decision = route(request=req, candidates=candidates)
    except rx.RoutingError as exc:
        raise _routing_error(exc) from exc
    chain = [catalogue.models[decision.model]]
    chain += [catalogue.models[n] for n in decision.fallbacks if n in catalogue.models]
    return Plan(chain=chain[:MAX_CHAIN], task_type=decision.task_type, routing_mode=decision.mode,
                reason=_finish_reason(decision.reason, prep),
                max_output_tokens=output_cap(call, chain[0]), input_tokens_est=input_tokens_est,
                techniques=[f"routing_{decision.mode}", *prep.techniques])
