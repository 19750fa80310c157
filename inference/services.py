"""Inference writes outside the hot path: feedback."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from asahi_project.errors import InvalidRequest, NotFound
from asahi_project.textrules import check_name
from governance.types import AuthContext
from inference.ledger import ledger
from inference.models import Feedback, InferenceEvent

logger = logging.getLogger("asahi.feedback")


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
