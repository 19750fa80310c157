"""Edge validation for the hot path: precise 400s that name the field, without DRF's per-request cost."""

from __future__ import annotations

from typing import Any

import orjson

from asahi_project.errors import InvalidRequest, PayloadTooLarge
from asahi_project.textrules import check_json_text, check_name

ROLES = {"system", "developer", "user", "assistant", "tool"}
ROUTING_MODES = ("autopilot", "guided", "explicit")
QUALITY_PREFS = ("low", "medium", "high", "max")
LATENCY_PREFS = ("low", "medium", "high")
CACHE_MODES = ("default", "no-cache", "no-store")


def parse_json(body: bytes, max_bytes: int) -> dict[str, Any]:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON body: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    check_json_text(data, body)
    return data


def _num(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number", param=name)
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be between {lo:g} and {hi:g}", param=name)
    return float(value)


def _int(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer", param=name)
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}", param=name)
    return value


def _bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false", param=name)
    return value


def _name(body: dict[str, Any], name: str, max_length: int, *, param: str | None = None,
          required: bool = False) -> str | None:
    """An identifier: a string of at most `max_length` characters (the ledger column's width)
    without control or bidirectional-formatting characters."""
    value = body.get(name)
    param = param or name
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f"{param} must be a{' non-empty' if required else ''} string",
                             param=param)
    if len(value) > max_length:
        raise InvalidRequest(f"{param} must be at most {max_length} characters", param=param)
    return check_name(value, param)


def _text(body: dict[str, Any], name: str, *, param: str | None = None) -> str | None:
    """Free text; NUL is refused for the whole body by `parse_json`."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{param or name} must be a string", param=param or name)
    return value


def _choice(body: dict[str, Any], name: str, valid: tuple[str, ...]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in valid:
        raise InvalidRequest(f"{name} must be one of: {', '.join(valid)} (got {value!r})",
                             param=name, code="invalid_value")
    return str(value)


# Widths of the ledger columns these identifiers land in (InferenceEvent.model and .user).
MODEL_NAME_MAX = 120
USER_MAX = 200
ID_MAX = 200


def validate_chat_body(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model is required (a catalogue model or 'auto')", param="model")
    _name(body, "model", MODEL_NAME_MAX)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        if m.get("role") not in ROLES:
            raise InvalidRequest(f"{where}.role must be one of: {', '.join(sorted(ROLES))}",
                                 param=f"{where}.role")
        content = m.get("content")
        if content is None:
            if m.get("role") != "assistant" or not m.get("tool_calls"):
                raise InvalidRequest(f"{where}.content is required", param=f"{where}.content")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                    raise InvalidRequest(f"{where}.content[{j}] must be a text or image_url part",
                                         param=f"{where}.content[{j}]")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise InvalidRequest(f"{where}.content[{j}].text must be a string",
                                         param=f"{where}.content[{j}].text")
        elif not isinstance(content, str):
            raise InvalidRequest(f"{where}.content must be a string or an array of parts",
                                 param=f"{where}.content")
        if m.get("role") == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequest(f"{where}.tool_call_id is required for tool messages",
                                 param=f"{where}.tool_call_id")
        _name(m, "tool_call_id", ID_MAX, param=f"{where}.tool_call_id")
        _name(m, "name", ID_MAX, param=f"{where}.name")
        _tool_calls(m, where)
    _num(body, "temperature", 0, 2)
    _num(body, "top_p", 0, 1)
    _num(body, "presence_penalty", -2, 2)
    _num(body, "frequency_penalty", -2, 2)
    _int(body, "max_tokens", 1, 1_000_000)
    _int(body, "max_completion_tokens", 1, 1_000_000)
    _int(body, "n", 1, 1)
    _int(body, "seed", -(2**63), 2**63 - 1)
    _int(body, "top_logprobs", 0, 20)
    _bool(body, "stream")
    _bool(body, "logprobs")
    _bool(body, "parallel_tool_calls")
    _name(body, "user", USER_MAX)
    _name(body, "model_override", MODEL_NAME_MAX)
    fallbacks = body.get("fallbacks")
    if fallbacks is not None:
        if not isinstance(fallbacks, list):
            raise InvalidRequest("fallbacks must be an array of model names", param="fallbacks")
        for i in range(len(fallbacks)):
            _name({"f": fallbacks[i]}, "f", MODEL_NAME_MAX, param=f"fallbacks[{i}]",
                  required=True)
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))):
        raise InvalidRequest("stop must be a string or an array of up to 4 strings", param="stop")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools must be an array", param="tools")
        for i, t in enumerate(tools):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(f"tools[{i}].function.name is required",
                                     param=f"tools[{i}].function.name")
    tc = body.get("tool_choice")
    if tc is not None and not (tc in ("auto", "none", "required") or (
            isinstance(tc, dict) and isinstance((tc.get("function") or {}).get("name"), str))):
        raise InvalidRequest("tool_choice must be auto, none, required or a named function",
                             param="tool_choice")
    rf = body.get("response_format")
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") in (
            "text", "json_object", "json_schema")):
        raise InvalidRequest("response_format.type must be text, json_object or json_schema",
                             param="response_format")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    if so:
        _bool(so, "include_usage")
    _name(body, "document_id", ID_MAX, required=body.get("document_id") is not None)
    validate_asahi_options(body)


def _tool_calls(m: dict[str, Any], where: str) -> None:
    calls = m.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    for j, c in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict):
            raise InvalidRequest(f"{at}.function must be an object", param=f"{at}.function")
        _name(fn, "name", ID_MAX, param=f"{at}.function.name", required=True)
        _text(fn, "arguments", param=f"{at}.function.arguments")
        _name(c, "id", ID_MAX, param=f"{at}.id")


INFER_FIELDS = frozenset({
    "prompt", "task_id", "latency_budget_ms", "quality_threshold", "cost_budget", "user_id",
    "organization_id", "routing_mode", "quality_preference", "latency_preference",
    "model_override", "document_id", "max_tokens", "temperature", "cache", "system",
    # Deferred requests (batching.api.infer answers them; only `false` reaches this app's view).
    "deferrable", "webhook_url"})


def validate_infer_body(body: dict[str, Any], *, max_prompt_chars: int) -> None:
    """``POST /infer``: every field's type and range, as strictly as the chat endpoint."""
    unknown = sorted(set(body) - INFER_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required and must be a non-empty string", param="prompt")
    if len(prompt) > max_prompt_chars:
        raise PayloadTooLarge(f"prompt is {len(prompt)} characters; the limit is "
                              f"{max_prompt_chars}", code="prompt_too_large", param="prompt")
    _text(body, "system")
    _name(body, "user_id", USER_MAX)
    _name(body, "model_override", MODEL_NAME_MAX)
    for name in ("task_id", "organization_id"):
        _name(body, name, ID_MAX)
    _name(body, "document_id", ID_MAX, required=body.get("document_id") is not None)
    _int(body, "max_tokens", 1, 1_000_000)
    _num(body, "temperature", 0, 2)
    _bool(body, "deferrable")
    if body.get("webhook_url") is not None and body.get("deferrable") is not True:
        raise InvalidRequest("webhook_url needs deferrable: true", param="webhook_url")
    validate_asahi_options(body)


def validate_embeddings_body(body: dict[str, Any]) -> None:
    _name(body, "model", MODEL_NAME_MAX, required=True)
    validate_asahi_options({"cache": body.get("cache")})


def cache_mode(body: dict[str, Any], cache_control: str) -> str:
    """The body's ``cache`` field or the request's ``Cache-Control`` header, whichever is stricter.

    ``Cache-Control: no-cache`` / ``no-store`` mean what they mean in HTTP: do not answer from
    the cache / do not store the answer either. Other directives (``max-age``, ...) are ignored.
    ``body["cache"]`` must already be validated."""
    modes = [body.get("cache") or "default"]
    modes += [d.strip().lower() for d in cache_control.split(",")
              if d.strip().lower() in ("no-cache", "no-store")]
    return max(modes, key=CACHE_MODES.index)


def validate_asahi_options(body: dict[str, Any]) -> None:
    _choice(body, "routing_mode", ROUTING_MODES)
    _choice(body, "quality_preference", QUALITY_PREFS)
    _choice(body, "latency_preference", LATENCY_PREFS)
    _choice(body, "cache", CACHE_MODES)
    _int(body, "latency_budget_ms", 1, 600_000)
    _num(body, "quality_threshold", 0, 5)
    _num(body, "cost_budget", 0, 1_000_000)


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)
