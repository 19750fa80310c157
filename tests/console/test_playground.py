"""Playground: one prompt through the API's pipeline with the session user, over HTTP against the
live ASGI server (a streamed answer must be read on the server's own event loop, which the Django
test client cannot do), real PostgreSQL and Redis, the fake upstream behind the providers' SDKs.
It is billed to the organization's playground key, recorded in the ledger with the user, audited,
and streamed back; the form is CSRF protected."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from governance.models import ApiKey, AuditEvent
from governance.services import PLAYGROUND_KEY_NAME
from inference.ledger import ledger
from inference.models import InferenceEvent
from tests.console.conftest import ConsoleOrg
from tests.fakeup import fake_upstream  # noqa: F401
from tests.inference.conftest import asahi_url, gateway, upstream_env  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


class Browserless:
    """A session-authenticated HTTP client of the live server, as the page's script is."""

    def __init__(self, base_url: str, user) -> None:
        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore

        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        self.http = httpx.Client(base_url=base_url, timeout=30,
                                 cookies={settings.SESSION_COOKIE_NAME: session.session_key})
        page = self.http.get("/playground/")
        assert page.status_code == 200
        self.csrf = self.http.cookies["csrftoken"]

    def post(self, path: str, data: dict, *, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        return self.http.post(path, data=data, headers=headers)


@pytest.fixture
def live(gateway):  # noqa: F811
    return gateway


def run(client: Browserless, **fields) -> tuple[int, list[dict]]:
    data = {"prompt": "Name three rivers in Europe.", "model": "gpt-4o-mini", "cache": "on",
            **fields}
    data = {k: v for k, v in data.items() if v is not None}
    response = client.post("/playground/run", data)
    if response.status_code != 200:
        return response.status_code, [response.json()]
    assert response.headers["content-type"] == "text/event-stream"
    return 200, [json.loads(part[6:]) for part in response.text.split("\n\n")
                 if part.startswith("data: ")]


def test_a_run_streams_then_reports_what_the_ledger_recorded(live, org_a: ConsoleOrg) -> None:
    status, events = run(Browserless(live, org_a.users["member"]))
    assert status == 200, events
    deltas = [e for e in events if e["type"] == "delta"]
    done = events[-1]
    assert deltas and done["type"] == "done"
    ledger.flush()
    row = InferenceEvent.objects.get(request_id=done["request_id"])
    key = ApiKey.objects.get(organization=org_a.org, name=PLAYGROUND_KEY_NAME)
    assert row.organization_id == org_a.org.id and row.api_key_id == key.pk
    assert row.user == "user:member@acme.test"
    assert done["model"] == row.model == "gpt-4o-mini"
    assert done["cost_usd"] == str(row.cost_usd) and row.cost_usd > 0
    assert done["baseline_cost_usd"] == str(row.baseline_cost_usd)
    assert done["cache_tier"] == 0 and done["routing_reason"] == row.routing_reason
    assert "".join(d["text"] for d in deltas)
    assert key.scopes == ["infer"]
    audit = AuditEvent.objects.get(action="playground_request", request_id=done["request_id"])
    assert audit.actor == "user:member@acme.test" and audit.target_id == key.prefix
    assert AuditEvent.objects.filter(action="api_key_created", target_id=key.prefix,
                                     actor="user:member@acme.test").exists()


def test_the_same_prompt_again_is_an_exact_hit_unless_the_cache_is_off(live,
                                                                       org_a: ConsoleOrg) -> None:
    client = Browserless(live, org_a.users["member"])
    first = run(client, prompt="What is the boiling point of water?")[1][-1]
    second = run(client, prompt="What is the boiling point of water?")[1][-1]
    assert first["cache_tier"] == 0 and second["cache_tier"] == 1
    assert second["cache"] == "exact" and second["cost_usd"] == "0"
    # Unchecked box: the form omits `cache`, which is "neither read nor write".
    third = run(client, prompt="What is the boiling point of water?", cache=None)[1][-1]
    assert third["cache_tier"] == 0 and third["cost_usd"] != "0"
    # One playground key for the organization, however many runs.
    assert ApiKey.objects.filter(organization=org_a.org, name=PLAYGROUND_KEY_NAME).count() == 1


def test_the_api_validation_applies_and_answers_in_the_error_shape(live,
                                                                   org_a: ConsoleOrg) -> None:
    client = Browserless(live, org_a.users["member"])
    status, (err,) = run(client, model="no-such-model")
    assert status == 400 and err["error"]["param"] == "model" and err["request_id"]
    status, (err,) = run(client, prompt="")
    assert status == 400 and err["error"]["param"] == "prompt"
    status, (err,) = run(client, routing_mode="explicit", model="auto")
    assert status == 400 and err["error"]["param"] == "model_override"


def test_the_policy_budget_stops_the_playground_like_any_key(live, org_a: ConsoleOrg) -> None:
    from decimal import Decimal

    from governance.services import policy_update

    policy_update(organization=org_a.org, actor="test",
                  changes={"max_cost_per_request_usd": Decimal("0.000000001")})
    status, (err,) = run(Browserless(live, org_a.users["member"]))
    assert status == 403 and err["error"]["code"] == "max_cost_per_request_exceeded"
    assert not InferenceEvent.objects.filter(organization_id=org_a.org.id, status="ok").exists()


def test_a_revoked_playground_key_is_replaced_not_reused(live, org_a: ConsoleOrg) -> None:
    from governance.services import api_key_revoke

    run(Browserless(live, org_a.users["member"]))
    old = ApiKey.objects.get(organization=org_a.org, name=PLAYGROUND_KEY_NAME)
    api_key_revoke(prefix=old.prefix, actor="test")
    status, events = run(Browserless(live, org_a.users["member"]),
                         prompt="Another question entirely.")
    assert status == 200
    ledger.flush()
    row = InferenceEvent.objects.get(request_id=events[-1]["request_id"])
    assert row.api_key_id != old.pk
    assert ApiKey.objects.get(pk=row.api_key_id).revoked_at is None


def test_without_the_csrf_token_nothing_runs(live, org_a: ConsoleOrg) -> None:
    client = Browserless(live, org_a.users["member"])
    response = client.post("/playground/run", {"prompt": "hi", "model": "gpt-4o-mini"},
                           csrf=False)
    assert response.status_code == 403
    ledger.flush()
    assert not InferenceEvent.objects.filter(organization_id=org_a.org.id).exists()


def test_a_viewer_cannot_run_a_prompt(live, org_a: ConsoleOrg) -> None:
    status, _ = run(Browserless(live, org_a.users["viewer"]))
    assert status == 403
    ledger.flush()
    assert not InferenceEvent.objects.filter(organization_id=org_a.org.id).exists()


def test_a_document_question_goes_through_tier_3_and_reports_its_totals(live,
                                                                        org_a: ConsoleOrg) -> None:
    client = Browserless(live, org_a.users["member"])
    document = "The Danube flows through Vienna, Bratislava and Budapest. " * 120
    prompt = f"Which cities does the river flow through?\n<document>{document}</document>"
    status, events = run(client, prompt=prompt, document_id="danube-notes")
    assert status == 200, events
    done = events[-1]
    assert done["type"] == "done" and done["cost_usd"] is not None
    assert "".join(e["text"] for e in events if e["type"] == "delta")
    ledger.flush()
    rows = InferenceEvent.objects.filter(organization_id=org_a.org.id, user="user:member@acme.test")
    assert rows.exists()  # billed like any tier-3 request: its steps are in the ledger
    assert sum(r.cost_usd for r in rows) == Decimal(done["cost_usd"])
