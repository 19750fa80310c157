"""Inference services: a request body as a pipeline call (shared by the API and the console's
playground), and feedback."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from asahi_project.client_ip import client_ip
from asahi_project.errors import InvalidRequest, NotFound
from asahi_project.request_id import current_request_id
from asahi_project.textrules import check_name
from governance.types import AuthContext
from inference import pipeline
from inference.ledger import ledger
from inference.models import Feedback, InferenceEvent
from inference.providers.errors import ProviderError
from inference.providers.openai_format import request_from_openai
from inference.validation import cache_mode, validate_chat_body

logger = logging.getLogger("asahi.feedback")


def routing_options(body: dict[str, Any]) -> pipeline.RoutingOptions:
    return pipeline.RoutingOptions(
        mode=body.get("routing_mode"), quality_preference=body.get("quality_preference"),
        latency_preference=body.get("latency_preference"),
        latency_budget_ms=body.get("latency_budget_ms"),
        quality_threshold=body.get("quality_threshold"), cost_budget=body.get("cost_budget"),
        model_override=body.get("model_override"),
    )


ASAHI_FIELDS = ("routing_mode", "quality_preference", "latency_preference", "latency_budget_ms",
                "quality_threshold", "cost_budget", "model_override", "cache", "document_id",
                "fallbacks", "stream_options")


def chat_call(*, auth: AuthContext, body: dict[str, Any], request: HttpRequest,
              ) -> pipeline.GatewayCall:
    """A validated chat body (OpenAI format plus Asahi's fields) as a pipeline call: shared by
    /v1/chat/completions and the console's playground, so both validate and route alike."""
    validate_chat_body(body)
    try:
        chat = request_from_openai(body)
    except ProviderError as exc:
        raise InvalidRequest(exc.message) from exc
    for name in ASAHI_FIELDS:
        chat.extra.pop(name, None)
    if body.get("fallbacks"):
        chat.extra["fallbacks"] = body["fallbacks"]
    return pipeline.GatewayCall(
        auth=auth, request_id=current_request_id(), endpoint="chat", chat=chat,
        routing=routing_options(body),
        cache_mode=cache_mode(body, request.headers.get("Cache-Control", "")),
        document_id=body.get("document_id"), client_ip=client_ip(request),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


def _rating(body: dict[str, Any]) -> int:
    thumbs = body.get("thumbs")
    if thumbs is not None and thumbs not in ("up", "down"):
        raise InvalidRequest("thumbs must be 'up' or 'down'", param="thumbs")
    if "rating" in body and body["rating"] is not None:
        r = body["rating"]
        if isinstance(r, bool) or not isinstance(r, int | float) or not 1 <= r <= 5:
            raise InvalidRequest("rating must be a number from 1 to 5", param="rating")
        return round(r)
    if thumbs in ("up", "down"):
        return 5 if thumbs == "up" else 1
    raise InvalidRequest("send rating (1-5) or thumbs ('up' or 'down')", param="rating")


def feedback_create(*, auth: AuthContext, body: dict[str, Any]) -> Feedback:
    unknown = sorted(set(body) - {"request_id", "rating", "thumbs", "comment"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequest("request_id is required", param="request_id")
    if len(request_id) > 128:
        raise InvalidRequest("request_id must be at most 128 characters", param="request_id")
    check_name(request_id, "request_id")
    comment = body.get("comment")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > 4000:
        raise InvalidRequest("comment must be a string of at most 4000 characters",
                             param="comment")
    rating = _rating(body)
    try:
        ledger.flush()  # the request may still be in this process's buffer
    except Exception:  # the buffer holds other requests' rows too: their trouble is not ours
        logger.warning("feedback_ledger_flush_failed", exc_info=True)
    event = (InferenceEvent.objects.filter(organization_id=auth.org_id, request_id=request_id,
                                           status="ok").only("model", "task_type").first())
    if event is None:
        raise NotFound(f"no successful request {request_id} in this organization",
                       code="request_not_found")
    try:
        with transaction.atomic():
            return Feedback.objects.create(organization_id=auth.org_id, request_id=request_id,
                                           model=event.model, task_type=event.task_type,
                                           rating=rating, comment=comment)
    except IntegrityError as exc:
        raise InvalidRequest("feedback for this request was already recorded",
                             code="duplicate_feedback", status=409) from exc
