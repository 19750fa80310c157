"""The request id: taken from a well-formed incoming X-Request-ID, else generated; kept in a contextvar."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("asahi_request_id", default="")
_VALID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id(incoming: str | None = None) -> str:
    rid = incoming if incoming and _VALID.match(incoming) else f"req_{uuid.uuid4().hex}"
    _request_id.set(rid)
    return rid


def current_request_id() -> str:
    return _request_id.get()
