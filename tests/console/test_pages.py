"""Dashboard, cache and analytics pages over a real ledger (Django test client, real PostgreSQL and
Redis): the numbers are the selectors' over the organization's own rows, never another's."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics import selectors
from analytics.templatetags.money import format_usd
from governance.models import AuditEvent
from inference.models import InferenceEvent
from tests.analytics.conftest import ledger, ledger_sums, seed_events
from tests.console.conftest import ConsoleOrg

pytestmark = pytest.mark.django_db


def events(org_id: uuid.UUID, costs: list[str], *, at=None, model: str = "gpt-4o-mini",
           reason: str = "") -> None:
    at = at or timezone.now() - timedelta(minutes=5)
    InferenceEvent.objects.bulk_create([InferenceEvent(
        created_at=at, request_id=f"req-{uuid.uuid4().hex}", organization_id=org_id,
        endpoint="chat", model=model, provider="openai", status="ok", routing_reason=reason,
        cost_usd=Decimal(c), baseline_cost_usd=Decimal(c) * 10) for c in costs])


def card(html: str, name: str) -> str:
    return re.search(rf'data-card="{name}">([^<]*)<', html).group(1)


def test_dashboard_cards_are_the_organizations_own_totals(org_a: ConsoleOrg,
                                                          org_b: ConsoleOrg) -> None:
    now = timezone.now()
    seed_events(org_id=org_a.org.id, key_ids=[org_a.key.pk, None], start=now - timedelta(days=6),
                end=now - timedelta(minutes=1), count=400, seed=7)
    seed_events(org_id=org_b.org.id, key_ids=[None], start=now - timedelta(days=6), end=now,
                count=300, seed=8)
    html = org_a.client("viewer").get("/dashboard/", {"period": "7d"}).content.decode()
    since = selectors.period_since("7d")
    want = ledger_sums(ledger(org_a.org.id, since))
    assert card(html, "requests") == str(want["requests"])
    assert card(html, "cost") == format_usd(want["cost"])
    saved = want["baseline_ok"] + (want["cost"] - want["cost_ok"]) - want["cost"]
    assert card(html, "avoided") == format_usd(saved)
    assert card(html, "hit-rate") == f"{round(want['hits'] / want['ok'] * 100)} %"
    # Latest inferences: A's newest rows, none of B's.
    newest = ledger(org_a.org.id).order_by("-created_at", "-id").first()
    assert f'data-request-id="{newest.request_id}"' in html
    assert "seed-8-" not in html


def test_small_amounts_keep_their_digits(org_a: ConsoleOrg) -> None:
    events(org_a.org.id, ["0.000024", "0.000024"], reason="cheapest model meeting quality")
    events(org_a.org.id, ["0.00004829"], at=timezone.now() - timedelta(days=1))
    html = org_a.client("viewer").get("/dashboard/").content.decode()
    assert card(html, "cost") == "$0.00009629"
    assert "$0.00009629<" in html  # the model row
    assert "$0.000024<" in html  # a latest-inference row
    assert "cheapest model meeting quality" in html  # its routing reason
    assert "$0.0000<" not in html
    text = re.sub(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", html)
    assert not re.search(r"\d[eE]-\d", text), "scientific notation on the page"


def test_an_unknown_period_names_the_field_and_keeps_the_page(org_a: ConsoleOrg) -> None:
    for path in ("/dashboard/", "/dashboard/live/", "/analytics/", "/analytics/ledger.csv"):
        response = org_a.client("viewer").get(path, {"period": "1y"})
        assert response.status_code == 400, path
        assert "period" in response.content.decode() and "1y" in response.content.decode()


def test_live_fragment_has_the_hits_chart_series(org_a: ConsoleOrg) -> None:
    now = timezone.now()
    seed_events(org_id=org_a.org.id, key_ids=[None], start=now - timedelta(hours=20),
                end=now - timedelta(minutes=1), count=200, seed=3)
    html = org_a.client("viewer").get("/dashboard/live/", {"period": "24h"}).content.decode()
    data = re.search(r'<script id="hits-data" type="application/json">(.*?)</script>', html)
    import json

    series = json.loads(data.group(1))
    rows = ledger(org_a.org.id, selectors.period_since("24h"))
    assert sum(series["requests"]) == rows.count()
    assert sum(series["hits"]) == rows.filter(cache_tier__gt=0, status="ok").count()


def test_analytics_page_shows_every_breakdown_and_the_forecast(org_a: ConsoleOrg,
                                                               catalogue) -> None:
    now = timezone.now()
    seed_events(org_id=org_a.org.id, key_ids=[org_a.key.pk, None], start=now - timedelta(days=6),
                end=now - timedelta(minutes=1), count=300, seed=5)
    html = org_a.client("viewer").get("/analytics/", {"period": "7d"}).content.decode()
    for section in ("by-model", "by-provider", "by-key", "by-tier", "by-task_type", "forecast",
                    "latency", "recommendations", "anomalies"):
        assert f'id="{section}"' in html, section
    assert org_a.key.prefix in html  # the key breakdown names keys by their public prefix
    by_model = selectors.breakdown(org_ids=[org_a.org.id], by="model",
                                   since=selectors.period_since("7d"))
    for row in by_model:
        assert f"<td>{row.key}</td><td>{row.requests}</td><td>{format_usd(row.cost_usd)}</td>" in html


def test_ledger_csv_is_the_periods_rows_of_the_organization_only(org_a: ConsoleOrg,
                                                                  org_b: ConsoleOrg) -> None:
    now = timezone.now()
    seed_events(org_id=org_a.org.id, key_ids=[org_a.key.pk], start=now - timedelta(days=3),
                end=now, count=2500, seed=11)  # more than one page of the download
    events(org_a.org.id, ["0.5"], at=now - timedelta(days=20))  # outside 7d
    events(org_a.org.id, ["0.1"], model="=HYPERLINK(1)")
    seed_events(org_id=org_b.org.id, key_ids=[None], start=now - timedelta(days=1), end=now,
                count=50, seed=12)
    response = org_a.client("viewer").get("/analytics/ledger.csv", {"period": "7d"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    body = b"".join(response).decode()  # an async stream, read as a client would
    rows = list(csv.DictReader(io.StringIO(body)))
    since = selectors.period_since("7d")
    want = set(ledger(org_a.org.id, since).values_list("request_id", flat=True))
    assert [r["request_id"] for r in rows if r["request_id"] in want] == [r["request_id"] for r in rows]
    assert {r["request_id"] for r in rows} == want and len(rows) == len(want)
    assert sum(Decimal(r["cost_usd"]) for r in rows) == ledger_sums(ledger(org_a.org.id, since))["cost"]
    assert {r["api_key_prefix"] for r in rows} >= {org_a.key.prefix}
    assert "'=HYPERLINK(1)" in {r["model"] for r in rows}  # not a formula in a spreadsheet


def test_cache_invalidation_asks_first_then_deletes_and_audits(org_a: ConsoleOrg,
                                                              org_b: ConsoleOrg) -> None:
    from caching.models import SemanticEntry

    def entry(org, prompt: str) -> SemanticEntry:
        return SemanticEntry.objects.create(
            organization=org.org, model="gpt-4o-mini", task_type="qa", embedder="test:1",
            embedding=[0.0] * 384, prompt=prompt, answer={"content": "x"},
            expires_at=timezone.now() + timedelta(hours=1))

    mine, other = entry(org_a, "What is the capital of France?"), entry(org_b, "Capital of Spain?")
    admin = org_a.client("admin")
    page = admin.get("/cache/", {"q": "capital"}).content.decode()
    assert "What is the capital of France?" in page and "Capital of Spain?" not in page
    confirm = admin.post("/cache/invalidate/", {"target": "all"})
    assert confirm.status_code == 200 and "Yes, invalidate" in confirm.content.decode()
    assert SemanticEntry.objects.filter(pk=mine.pk).exists()  # nothing deleted yet
    done = admin.post("/cache/invalidate/", {"target": "all", "confirm": "on"})
    assert done.status_code == 302 and done["Location"] == "/cache/"
    assert not SemanticEntry.objects.filter(pk=mine.pk).exists()
    assert SemanticEntry.objects.filter(pk=other.pk).exists()  # B's cache untouched
    audit = AuditEvent.objects.get(action="cache_invalidated", organization=org_a.org)
    assert audit.actor == "user:admin@acme.test" and audit.details["semantic_rows"] == 1


def test_cache_invalidation_form_names_the_wrong_field(org_a: ConsoleOrg) -> None:
    response = org_a.client("admin").post("/cache/invalidate/",
                                          {"target": "document", "document_hash": "abc"})
    assert response.status_code == 400
    assert "document_hash" in response.content.decode()
    assert not AuditEvent.objects.filter(action="cache_invalidated").exists()


def test_a_member_sees_no_invalidate_buttons(org_a: ConsoleOrg) -> None:
    html = org_a.client("member").get("/cache/").content.decode()
    assert 'action="/cache/invalidate/"' not in html
    assert 'action="/cache/invalidate/"' in org_a.client("admin").get("/cache/").content.decode()


def test_dashboard_tier_table_matches_the_ledger(org_a: ConsoleOrg) -> None:
    now = timezone.now()
    seed_events(org_id=org_a.org.id, key_ids=[None], start=now - timedelta(days=5),
                end=now - timedelta(minutes=1), count=300, seed=9)
    html = org_a.client("viewer").get("/dashboard/").content.decode()
    table = html.split('id="by-tier"')[1].split("</table>")[0]
    rows = ledger(org_a.org.id, selectors.period_since("7d"))
    for tier, name in selectors.TIER_NAMES.items():
        sums = ledger_sums(rows.filter(cache_tier=tier))
        assert f"<td>{name}</td><td>{sums['requests']}</td><td>{format_usd(sums['cost'])}</td>" in table
