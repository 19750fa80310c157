"""Property: any Unicode string in a text field of a main endpoint is answered 2xx or refused
with a 400 in the error shape naming the field (ids that are looked up may also be 403/404/409)
and never a 500; afterwards the ledger still flushes and an ordinary request's row lands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.ledger import ledger
from inference.models import InferenceEvent

pytestmark = [pytest.mark.redis]

# Characters that broke or could break something (NUL, CR/LF, ESC, C1, DEL, bidi, separators,
# astral), mixed into arbitrary text so that most examples hold at least one.
SPICE = st.sampled_from(["\x00", "\r\n", "\n", "\t", "\x1b[2J", "\x07", "\x85", "\x7f",
                         "\u202e", "\u2066", "\u2028", "\ufeff", "\u200b", "é", "東京", "😀",
                         " ", "", "\\u0000", "%00", '"', "<b>", "²", "٣"])
STRINGS = st.one_of(
    st.text(max_size=120),
    st.lists(st.one_of(st.text(max_size=12), SPICE), max_size=10).map("".join),
)

Body = Callable[[str], dict[str, Any]]
# (path, key, body with the value in place, the field as the 400 should name it, other statuses
# the value may legitimately earn)
CASES: dict[str, list[tuple[str, str, Body, str, set[int]]]] = {
    "infer": [
        ("/infer", "infer", lambda v: {"prompt": v, "cache": "no-store"}, "prompt", set()),
        ("/infer", "infer", lambda v: {"prompt": "hi", "system": v}, "system", set()),
        ("/infer", "infer", lambda v: {"prompt": "hi", "user_id": v}, "user_id", set()),
        ("/infer", "infer", lambda v: {"prompt": "hi", "task_id": v}, "task_id", set()),
        ("/infer", "infer", lambda v: {"prompt": "hi", "model_override": v}, "model_override",
         {404}),
        ("/infer", "infer", lambda v: {"prompt": "hi", "organization_id": v}, "organization_id",
         {403}),
    ],
    "chat": [
        ("/v1/chat/completions", "infer", lambda v: {
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": v}],
            "cache": "no-store"}, "messages[0].content", set()),
        ("/v1/chat/completions", "infer", lambda v: {
            "model": "gpt-4o-mini", "user": v, "messages": [{"role": "user", "content": "hi"}]},
         "user", set()),
        ("/v1/chat/completions", "infer", lambda v: {
            "model": v, "messages": [{"role": "user", "content": "hi"}]}, "model", {404}),
        ("/v1/chat/completions", "infer", lambda v: {
            "model": "gpt-4o-mini", "messages": [{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "hi", "name": v}]},
         "messages[1].name", set()),
        ("/v1/embeddings", "infer", lambda v: {"model": "text-embedding-3-small", "input": v},
         "input", set()),
        ("/feedback", "infer", lambda v: {"request_id": "req_missing_1", "rating": 4,
                                          "comment": v}, "comment", {404}),
        ("/feedback", "infer", lambda v: {"request_id": v, "rating": 4}, "request_id", {404}),
    ],
    "governance": [
        ("/signup", "", lambda v: {"org_name": v, "user_id": "prop-user"}, "org_name", {409}),
        ("/signup", "", lambda v: {"org_name": "Prop Org", "user_id": v}, "user_id", {409}),
        ("/signup", "", lambda v: {"org_name": "Prop Org 2", "user_id": "prop-2", "email": v},
         "email", {409}),
        ("/governance/api-keys", "admin", lambda v: {"name": v}, "name", set()),
        ("/cache/invalidate", "admin", lambda v: {"scope": "model", "model": v}, "model", set()),
        ("/cache/invalidate", "admin", lambda v: {"scope": "entry", "entry_id": v}, "entry_id",
         set()),
    ],
}
FIELD = {group: st.sampled_from(range(len(cases))) for group, cases in CASES.items()}


def check(base: str, tenant: Any, case: tuple[str, str, Body, str, set[int]], value: str) -> None:
    path, key, body, field, also = case
    headers = {"Authorization": f"Bearer {getattr(tenant, key).raw}"} if key else {}
    response = httpx.post(f"{base}{path}", json=body(value), headers=headers, timeout=30)
    status = response.status_code
    assert status < 500, (path, field, repr(value), status, response.text[:300])
    if status < 300:
        return
    data = response.json()
    assert set(data) == {"error", "request_id"}, data
    assert {"type", "message", "code", "param"} <= set(data["error"]), data
    if status == 400:
        error = data["error"]
        assert (error["param"] or "").startswith(field) or field in error["message"], (
            field, repr(value), error)
    else:
        assert status in also, (path, field, repr(value), status, response.text[:300])


def assert_ledger_still_writes(base: str, tenant: Any) -> None:
    ledger.flush()
    ok = httpx.post(f"{base}/infer", json={"prompt": "One more ordinary question?",
                                            "cache": "no-store"},
                    headers={"Authorization": f"Bearer {tenant.infer.raw}"}, timeout=30)
    assert ok.status_code == 200, ok.text
    ledger.flush()
    assert InferenceEvent.objects.filter(request_id=ok.json()["request_id"]).exists()


PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture
def lifted_signup_throttle(monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    # The server runs in this process; the throttle has its own test.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"signup": "100000/hour"})


@pytest.mark.parametrize("group", sorted(CASES))
def test_any_unicode_is_answered_or_refused_naming_the_field(gateway, live_tenant, group: str,
                                                             lifted_signup_throttle) -> None:
    @PROPERTY
    @given(index=FIELD[group], value=STRINGS)
    def prop(index: int, value: str) -> None:
        check(gateway, live_tenant, CASES[group][index], value)

    prop()
    assert_ledger_still_writes(gateway, live_tenant)
