"""The browser harness itself: chromium reaches the live server, a session cookie logs in."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import make_tenant
from tests.console.browser.conftest import make_member

pytestmark = pytest.mark.django_db(transaction=True)


def test_logged_in_browser_sees_its_organization_dashboard(console, login, page: Page) -> None:
    tenant = make_tenant("browser-acme")
    user = make_member(tenant.org, "member")
    login(page.context, user)
    page.goto(f"{console}/dashboard/")
    expect(page).to_have_title("Dashboard · Asahi")
    expect(page.locator("h1")).to_contain_text("browser-acme")
    # Everything the page loads comes from this server (vendored htmx, uPlot, Inter).
    hosts = set()
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    page.reload()
    page.wait_for_load_state("networkidle")
    assert hosts == {console.split("/")[2]}, hosts


def test_anonymous_browser_is_sent_to_login(console, page: Page) -> None:
    response = page.goto(f"{console}/dashboard/")
    assert response is not None
    assert page.url.startswith(f"{console}/login/?next=/dashboard/"), page.url
