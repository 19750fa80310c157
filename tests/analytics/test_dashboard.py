"""The dashboard shows small amounts with their digits (never $0.0000 beside rows that add up to
more, never scientific notation) and opens on an organization with traffic."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from analytics.templatetags.money import format_usd
from inference.models import InferenceEvent
from tests.conftest import make_tenant

pytestmark = [pytest.mark.urls("tests.analytics.urls"), pytest.mark.django_db]


@pytest.mark.parametrize(("value", "shown"), [
    (0, "$0.00"), (Decimal("0.000048"), "$0.000048"), (4.829e-05, "$0.00004829"),
    (0.1234567, "$0.1235"), (0.5, "$0.50"), (1234.5, "$1,234.50"), (-0.0012, "-$0.0012"),
    (Decimal("0.000000001"), "$0.000000001"), (1e-12, "$0.00"), (12.345678, "$12.35"),
])
def test_format_usd(value, shown: str) -> None:
    assert format_usd(value) == shown


def events(org_id: uuid.UUID, costs: list[str], *, at=None) -> None:
    at = at or timezone.now() - timedelta(minutes=5)
    InferenceEvent.objects.bulk_create([InferenceEvent(
        created_at=at, request_id=f"req-{uuid.uuid4().hex}", organization_id=org_id,
        endpoint="chat", model="gpt-4o-mini", provider="openai", status="ok",
        cost_usd=Decimal(c), baseline_cost_usd=Decimal(c) * 10) for c in costs])


@pytest.fixture
def staff(client: Client) -> Client:
    user = get_user_model().objects.create_user("ops", password="pw-123456", is_staff=True)
    client.force_login(user)
    return client


def test_small_amounts_keep_their_digits_everywhere(staff: Client, tenant) -> None:
    # Spread over two days so the daily chart has a bar of a few hundred-thousandths.
    events(tenant.org.id, ["0.000024", "0.000024"])
    events(tenant.org.id, ["0.00004829"], at=timezone.now() - timedelta(days=1))
    html = staff.get("/dashboard/", {"org_id": str(tenant.org.id), "period": "7d"}
                     ).content.decode()
    cost_card = re.search(r"<span>Cost</span><strong>([^<]*)</strong>", html).group(1)
    assert cost_card == "$0.00009629"
    assert "$0.000048<" in html  # the model row
    assert "$0.000024<" in html  # a recent-inference row
    assert ": $0.00004829</title>" in html  # the chart's bar for yesterday
    assert "$0.0000<" not in html
    # Organization ids are UUIDs, whose hex can read like "5e-0"; they are not amounts.
    text = re.sub(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", html)
    assert not re.search(r"\d[eE]-\d", text), "scientific notation on the page"


def test_opens_on_the_organization_with_the_latest_traffic(staff: Client, tenant) -> None:
    busy = make_tenant("zeta busy")  # sorts after acme, created later
    make_tenant("aardvark idle")  # sorts first, created last, no traffic
    events(tenant.org.id, ["0.01"], at=timezone.now() - timedelta(hours=3))
    events(busy.org.id, ["0.02"], at=timezone.now() - timedelta(minutes=1))
    html = staff.get("/dashboard/").content.decode()
    assert "<title>Asahi dashboard · zeta busy</title>" in html
    # An explicit choice still wins.
    html = staff.get("/dashboard/", {"org_id": str(tenant.org.id)}).content.decode()
    assert "<title>Asahi dashboard · acme</title>" in html


def test_without_any_traffic_it_opens_on_the_first_organization(staff: Client, tenant) -> None:
    make_tenant("zulu")
    html = staff.get("/dashboard/").content.decode()
    assert "<title>Asahi dashboard · acme</title>" in html
