"""Schemathesis over /openapi.json against the live server (uvicorn in a thread, the fake upstream).

Every operation is called with a key of the scope it needs. Checks: no 5xx, responses match their
schema, every documented status code is the one answered, and every 4xx is Asahi's error shape.

Two tenants keep the destructive operations from breaking the rest: the governance tenant's admin key
signs /governance/* and /cache/invalidate (its policy writes and key revocations only touch it), the
gateway tenant's keys sign inference and analytics. Without stateful links the fuzzer never
reuses a prefix from a response, and a generated prefix that happened to equal the signing key's is
skipped, so the signing key is never revoked mid-run.

No stateful links: drf-spectacular emits none and the hand-written gateway paths have no
id-returning-then-id-taking pair worth a state machine (/feedback takes a request_id that /infer
returns, but a request_id is also accepted only for the caller's own organization, which
test_feedback covers directly).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Tenant, make_tenant

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@schemathesis.check
def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is {"error": {"type", "message", "code", "param"}, "request_id"}."""
    if not 400 <= response.status_code < 500:
        return None
    body = response.json()
    assert isinstance(body, dict), f"4xx body is not an object: {body!r}"
    error = body.get("error")
    assert isinstance(error, dict), f"4xx body has no error object: {body!r}"
    missing = {"type", "message", "code", "param"} - error.keys()
    assert not missing, f"error lacks {sorted(missing)}: {body!r}"
    assert isinstance(body.get("request_id"), str) and body["request_id"], body
    return True


EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance, error_shape]


@pytest.fixture
def fuzz_tenants(gateway: str) -> dict[str, Tenant]:
    return {"gov": make_tenant("fuzz-governance"), "gw": make_tenant("fuzz-gateway")}


def _signing_key(path: str, tenants: dict[str, Tenant]) -> str | None:
    if path.startswith("/governance/") or path == "/cache/invalidate":
        return tenants["gov"].admin.raw
    if path.startswith("/analytics/") or path in ("/metrics", "/cache/stats"):
        return tenants["gw"].analytics.raw
    if path in ("/signup", "/health"):
        return None
    return tenants["gw"].infer.raw


def _call(case: Any, gateway: str, tenants: dict[str, Tenant]) -> None:
    path = case.operation.path
    gov = tenants["gov"]
    if path == "/governance/api-keys/{prefix}" and case.path_parameters.get("prefix") in {
            gov.admin.key.prefix}:
        return
    if path == "/governance/policies/{org_id}":
        # A random org_id only ever meets the 400/403 guard; the policy body is what to fuzz.
        case.path_parameters = {"org_id": str(gov.org.id)}
    key = _signing_key(path, tenants)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    case.call_and_validate(base_url=gateway, headers=headers, checks=CHECKS, timeout=30)


def test_every_operation(gateway: str) -> None:
    # One test over all operations (schemathesis' own pytest loader does not run on pytest 9:
    # it writes Node._nodeid); each operation gets its own bounded hypothesis run, and every
    # operation's failure is collected before the test fails, so one run lists them all.
    tenants = {"gov": make_tenant("fuzz-governance"), "gw": make_tenant("fuzz-gateway")}
    api = schemathesis.openapi.from_url(f"{gateway}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 29

    runs = [(op, mode) for op in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    for operation, mode in runs:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            _call(case, gateway, tenants)

        try:
            run()
        except Unsatisfiable:
            pass  # nothing to make invalid: an operation without parameters or body
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 (reported below)
            failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"== {op}\n{text}" for op, text in failures.items())
