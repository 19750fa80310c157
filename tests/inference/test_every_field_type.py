"""Every field of every JSON request body in /openapi.json, sent with a value of a wrong type
(otherwise-valid body), is a 400 in the error shape that names the field. A new endpoint or
field is covered without editing this table, except for an endpoint's otherwise-valid body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.redis]

# An otherwise-valid body per operation: the wrong-typed field is the only fault.
BASE_BODIES: dict[str, dict[str, Any]] = {
    "chat_completions_create": {"model": "gpt-4o-mini",
                                "messages": [{"role": "user", "content": "hi"}]},
    "infer_create": {"prompt": "hi"},
    "embeddings_create": {"model": "text-embedding-3-small", "input": "hi"},
    "feedback_create": {"request_id": "req_typed_0001", "rating": 5},
    "signup_create": {"org_name": "Typed Org", "user_id": "typed"},
    "governance_api_keys_create": {"name": "typed"},
    "governance_policies_create": {},
    "cache_invalidate_create": {"scope": "all"},
    "batches_create": {"input_file_id": "file-typed", "endpoint": "/v1/chat/completions",
                       "completion_window": "24h"},
}
KEY_FOR = {"chat_completions_create": "infer", "infer_create": "infer",
           "embeddings_create": "infer", "feedback_create": "infer", "batches_create": "infer"}

SAMPLES: dict[str, Any] = {"object": {"x": 1}, "array": [1], "string": "wrong", "number": 12.5,
                           "boolean": True}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def allowed_types(schema: dict[str, Any], components: dict[str, Any]) -> set[str]:
    schema = _resolve(schema, components)
    types: set[str] = set()
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key, []):
            types |= allowed_types(option, components)
    if "type" in schema:
        types.add(schema["type"])
    elif "enum" in schema:
        types |= {"string" if isinstance(v, str) else "number" for v in schema["enum"]}
    if "number" in types:
        types.add("integer")
    return types


def wrong_values(schema: dict[str, Any], components: dict[str, Any]) -> list[Any]:
    allowed = allowed_types(schema, components)
    assert allowed, f"schema without a type: {schema}"
    values = [v for t, v in SAMPLES.items() if t not in allowed]
    item = _resolve(schema, components).get("items")
    if "array" in allowed and item and "object" not in allowed_types(item, components):
        values.append([{"x": 1}])  # an array whose item has the wrong type
    return values


@pytest.fixture(scope="module")
def openapi(asahi_url: str) -> dict[str, Any]:
    return httpx.get(f"{asahi_url}/openapi.json", timeout=30).json()


def operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    found = {}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                found[op["operationId"]] = (method, path, content["application/json"]["schema"])
    return found


def test_the_table_covers_every_operation_with_a_json_body(gateway, openapi) -> None:
    assert set(operations(openapi)) == set(BASE_BODIES)


@pytest.mark.parametrize("operation", sorted(BASE_BODIES))
def test_every_wrong_typed_field_is_a_400_naming_it(gateway, live_tenant, openapi, operation,
                                                    monkeypatch) -> None:
    from rest_framework.throttling import ScopedRateThrottle

    # The server runs in this process: lift the signup throttle for the many refused signups.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"signup": "10000/hour"})
    components = openapi["components"]["schemas"]
    method, path, schema = operations(openapi)[operation]
    schema = _resolve(schema, components)
    url = gateway + path.replace("{org_id}", str(live_tenant.org.id))
    key = getattr(live_tenant, KEY_FOR.get(operation, "admin")).raw
    failures = []
    checked = 0
    for field, field_schema in schema["properties"].items():
        for value in wrong_values(field_schema, components):
            body = {**BASE_BODIES[operation], field: value}
            response = httpx.request(method.upper(), url, json=body, timeout=30,
                                     headers={"Authorization": f"Bearer {key}"})
            checked += 1
            try:
                data = response.json()
                error = data["error"]
                ok = (response.status_code == 400 and set(data) == {"error", "request_id"}
                      and {"type", "message", "code", "param"} <= set(error)
                      and ((error["param"] or "").startswith(field)
                           or field in error["message"]))
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                failures.append(f"{field}={value!r}: {response.status_code} {response.text[:200]}")
    assert checked >= len(schema["properties"])
    assert not failures, "\n".join(failures)
