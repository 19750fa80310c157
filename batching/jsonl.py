"""Reading a batch input file: one request per line, each checked on its own.

A bad line (not JSON, no custom_id, a duplicate custom_id, another endpoint, an invalid body, an
unknown model, too long, past the request limit) becomes an error line, as OpenAI reports them;
the good lines run. Each good line's worst-case cost is estimated for the batch's reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from asahi_project.errors import AsahiError, InvalidRequest
from governance.types import AuthContext
from inference import pricing
from inference.pipeline import DEFAULT_MAX_OUTPUT
from inference.providers.errors import ProviderError
from inference.providers.openai_format import request_from_openai
from inference.selectors import Catalogue
from inference.types import ModelInfo
from inference.validation import validate_chat_body

ENDPOINT = "/v1/chat/completions"


@dataclass
class Line:
    line: int  # 1-based
    custom_id: str
    body: dict[str, Any] | None
    error_code: str = ""
    error_message: str = ""
    worst_usd: Decimal = Decimal(0)


def _reject(n: int, custom_id: str, code: str, message: str) -> Line:
    return Line(line=n, custom_id=custom_id, body=None, error_code=code, error_message=message)


def _worst(body: dict[str, Any], catalogue: Catalogue, auth: AuthContext) -> Decimal:
    """The most this line can cost at the synchronous price: its model, or for "auto" the most
    expensive chat model the key may use, at the output cap the pipeline will send."""
    name = body.get("model")
    models: list[ModelInfo]
    if name and name != "auto":
        models = [m for m in [catalogue.get(str(name))] if m is not None]
    else:
        models = [m for m in catalogue.models.values() if m.kind == "chat"
                  and (not auth.key_allowed_models or m.name in auth.key_allowed_models)]
    chars = sum(len(orjson.dumps(m.get("content"))) for m in body.get("messages") or [])
    tokens_in = pricing.estimate_tokens(chars, len(body.get("messages") or []))
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    worst = Decimal(0)
    for m in models:
        cap = min(int(asked), m.max_output_tokens or int(asked)) if asked else min(
            DEFAULT_MAX_OUTPUT, m.max_output_tokens or DEFAULT_MAX_OUTPUT)
        worst = max(worst, pricing.worst_case_cost(m, input_tokens=tokens_in,
                                                   max_output_tokens=cap))
    return worst


def check_body(body: dict[str, Any], catalogue: Catalogue) -> tuple[str, str] | None:
    """(code, message) when a chat body cannot run, else None."""
    try:
        validate_chat_body(body)
        request_from_openai(body)
    except AsahiError as err:
        return err.code or "invalid_request", err.message
    except ProviderError as exc:
        return "invalid_request", exc.message
    if body.get("stream"):
        return "invalid_request", "stream is not supported in a batch"
    name = str(body.get("model"))
    if name != "auto" and catalogue.get(name) is None:
        return "model_not_found", f"model {name!r} does not exist or is not enabled"
    return None


def parse_lines(data: bytes, *, catalogue: Catalogue, auth: AuthContext) -> list[Line]:
    out: list[Line] = []
    seen: set[str] = set()
    max_line = settings.ASAHI_BATCH_MAX_LINE_BYTES
    max_requests = settings.ASAHI_BATCH_MAX_REQUESTS
    max_lines = max(2 * max_requests, max_requests + 1000)
    accepted = 0
    for n, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(out) >= max_lines:
            # Reported per line up to a point; a file far past the limit is refused whole, so
            # one upload cannot create millions of error rows.
            raise InvalidRequest(f"the input file has more than {max_lines} lines; a "
                                 f"batch holds at most {max_requests} requests",
                                 code="too_many_requests", param="input_file_id")
        if len(raw) > max_line:
            out.append(_reject(n, "", "line_too_large",
                               f"line is {len(raw)} bytes; the limit is {max_line}"))
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            out.append(_reject(n, "", "invalid_json", f"line is not valid JSON: {exc}"))
            continue
        if not isinstance(obj, dict):
            out.append(_reject(n, "", "invalid_json", "line must be a JSON object"))
            continue
        cid = obj.get("custom_id")
        if not isinstance(cid, str) or not cid or len(cid) > 512:
            out.append(_reject(n, str(cid)[:512] if cid is not None else "",
                               "missing_custom_id",
                               "custom_id must be a non-empty string of at most 512 characters"))
            continue
        if cid in seen:
            out.append(_reject(n, cid, "duplicate_custom_id",
                               f"custom_id {cid!r} is used by an earlier line"))
            continue
        seen.add(cid)
        if obj.get("method", "POST") != "POST" or obj.get("url") != ENDPOINT:
            out.append(_reject(n, cid, "invalid_url",
                               f"this batch's endpoint is POST {ENDPOINT}; the line asks for "
                               f"{obj.get('method', 'POST')} {obj.get('url')}"))
            continue
        body = obj.get("body")
        if not isinstance(body, dict):
            out.append(_reject(n, cid, "invalid_body", "body must be a JSON object"))
            continue
        problem = check_body(body, catalogue)
        if problem is not None:
            out.append(_reject(n, cid, *problem))
            continue
        accepted += 1
        if accepted > max_requests:
            out.append(_reject(n, cid, "too_many_requests",
                               f"a batch holds at most {max_requests} requests"))
            continue
        out.append(Line(line=n, custom_id=cid, body=body,
                        worst_usd=_worst(body, catalogue, auth)))
    return out
