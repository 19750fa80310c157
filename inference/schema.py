"""OpenAPI descriptions of the hot-path endpoints.

They are plain async views (no DRF request cycle), so drf-spectacular cannot introspect them; this
post-processing hook adds their paths and schemas to /openapi.json.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "object", "properties": {
            "type": {"type": "string"}, "message": {"type": "string"},
            "code": {"type": "string"}, "param": {"type": "string", "nullable": True}},
            "required": ["type", "message", "code"]},
        "request_id": {"type": "string"},
    },
    "required": ["error", "request_id"],
}

ASAHI_OPTIONS = {
    "routing_mode": {"type": "string", "enum": ["autopilot", "guided", "explicit"]},
    "quality_preference": {"type": "string", "enum": ["low", "medium", "high", "max"]},
    "latency_preference": {"type": "string", "enum": ["low", "medium", "high"]},
    "latency_budget_ms": {"type": "integer", "minimum": 1},
    "quality_threshold": {"type": "number", "minimum": 0, "maximum": 5},
    "cost_budget": {"type": "number", "minimum": 0},
    "cache": {"type": "string", "enum": ["default", "no-cache", "no-store"]},
}

CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "maxLength": 120,
                  "description": "A catalogue model, or `auto` for the router"},
        "messages": {"type": "array", "items": {"type": "object", "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
                        "nullable": True},
            "tool_calls": {"type": "array", "items": {"type": "object"}},
            "tool_call_id": {"type": "string"}}}},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 1}, "seed": {"type": "integer"},
        "logprobs": {"type": "boolean"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "parallel_tool_calls": {"type": "boolean"},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "response_format": {"type": "object"}, "user": {"type": "string", "maxLength": 200},
        "stream": {"type": "boolean"}, "stream_options": {"type": "object", "properties": {
            "include_usage": {"type": "boolean"}}},
        "model_override": {"type": "string", "maxLength": 120},
        "fallbacks": {"type": "array", "items": {"type": "string"},
                      "description": "Models to try if an explicit model fails"},
        "document_id": {"type": "string", "description": "Tier 3: one user message that holds "
                        "<document>...</document> and a question"},
        **ASAHI_OPTIONS,
    },
}

INFER_REQUEST = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 100000},
        "task_id": {"type": "string", "maxLength": 200},
        "user_id": {"type": "string", "maxLength": 200},
        "organization_id": {"type": "string"},
        "model_override": {"type": "string", "maxLength": 120},
        "document_id": {"type": "string", "minLength": 1, "maxLength": 200,
                        "description": "Tier 3: prompt holds <document>...</document>"},
        "system": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        **ASAHI_OPTIONS,
    },
}

INFER_RESPONSE = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"}, "response": {"type": "string"},
        "model_used": {"type": "string"}, "tokens_input": {"type": "integer"},
        "tokens_output": {"type": "integer"}, "cost": {"type": "number"},
        "latency_ms": {"type": "number"}, "cache_hit": {"type": "boolean"},
        "cache_tier": {"type": "integer", "enum": [0, 1, 2, 3]},
        "routing_reason": {"type": "string"}, "cost_original": {"type": "number"},
        "cost_savings_percent": {"type": "number"},
        "optimization_techniques": {"type": "array", "items": {"type": "string"}},
        "task_type": {"type": "string"},
        "cache_reason": {"type": "string"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "Error", "content": {"application/json": {"schema": ERROR}}}
            for c in codes}


def _op(op_id: str, summary: str, tag: str, request: dict[str, Any] | None,
        response: dict[str, Any], errors: tuple[int, ...], description: str = "",
        ok: int = 200) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id, "summary": summary, "description": description, "tags": [tag],
        "security": [{"bearerAuth": []}],
        "responses": {str(ok): {"description": "OK", "content": {"application/json": {
            "schema": response}}}, **_errors(*errors)},
    }
    if request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    return op


def add_gateway_paths(result: dict[str, Any], generator: Any, request: Any, public: bool
                      ) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    paths = result.setdefault("paths", {})
    paths["/v1/chat/completions"] = {"post": _op(
        "chat_completions_create", "OpenAI-compatible chat completion", "inference", CHAT_REQUEST,
        {"type": "object", "description": "OpenAI chat.completion (or an SSE stream of chunks)"},
        (400, 401, 403, 404, 413, 429, 502, 503),
        "Response headers: X-Request-ID, X-Asahi-Cache, X-Asahi-Model, X-Asahi-Cost-USD, "
        "X-Asahi-Cache-Similarity, X-Asahi-Cache-Reason (why the semantic tier served or "
        "refused a stored answer). Request header Cache-Control: no-cache | no-store.")}
    paths["/infer"] = {"post": _op("infer_create", "Native inference (seed contract)", "inference", INFER_REQUEST,
                                   INFER_RESPONSE, (400, 401, 403, 404, 413, 429, 502, 503))}
    paths["/v1/embeddings"] = {"post": _op(
        "embeddings_create", "OpenAI-compatible embeddings (cached exactly)", "inference",
        {"type": "object", "required": ["model", "input"], "properties": {
            "model": {"type": "string", "maxLength": 120},
            "cache": ASAHI_OPTIONS["cache"],
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}},
        {"type": "object"}, (400, 401, 404, 429, 502))}
    paths["/v1/models"] = {"get": _op("v1_models_list", "Models (OpenAI list format)", "inference", None,
                                      {"type": "object"}, (401,))}
    paths["/models"] = {"get": _op("models_list", "Models with prices and quality", "inference", None,
                                   {"type": "object"}, (401,))}
    paths["/feedback"] = {"post": _op(
        "feedback_create", "Rate an answer", "inference",
        {"type": "object", "required": ["request_id"], "properties": {
            "request_id": {"type": "string", "maxLength": 128},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "thumbs": {"type": "string", "enum": ["up", "down"]},
            "comment": {"type": "string", "maxLength": 4000}}},
        {"type": "object"}, (400, 401, 404, 409), ok=201)}
    paths["/health"] = {"get": {"operationId": "health_retrieve", "summary": "Health of every component", "tags": ["health"],
                                "security": [], "responses": {
                                    "200": {"description": "OK"},
                                    "503": {"description": "Database down"}}}}
    return result


# What any DRF view can answer besides its success: a rejected input, a missing or bad key, a key
# without the scope or organization, an absent object, a rate limit. All in the Error shape.
SECURED_ERRORS = (400, 401, 403, 404, 429)
OPEN_ERRORS = {"signup_create": (400, 409, 429)}  # 409: the organization name is taken


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool
                    ) -> dict[str, Any]:
    """Adds the Error responses to every operation that does not list them (runs last)."""
    for path, item in result.get("paths", {}).items():
        if path == "/health":
            continue
        for op in item.values():
            codes = OPEN_ERRORS.get(op.get("operationId", ""), SECURED_ERRORS)
            responses = op.setdefault("responses", {})
            for code, response in _errors(*codes).items():
                responses.setdefault(code, response)
    return result
