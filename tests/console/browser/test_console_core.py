"""Part A's flows in a real browser: signup to dashboard; a key issued on the settings page is
shown once, works from the official openai SDK, and stops working when revoked; a viewer can
change nothing on any page."""

from __future__ import annotations

import time

import openai
import pytest
from playwright.sync_api import Page, expect

from governance.models import ApiKey, Membership, Policy
from tests.conftest import make_tenant
from tests.console.browser.conftest import make_member
from tests.inference.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)
PAGES = ("/dashboard/", "/playground/", "/cache/", "/analytics/", "/settings/", "/api-docs/")


def test_signup_in_the_browser_then_the_dashboard(console: str, page: Page) -> None:
    page.goto(f"{console}/")
    page.locator("main").get_by_role("link", name="Sign up").click()
    page.get_by_label("Organization name").fill("Browser Co")
    page.get_by_label("Email").fill("founder@browser.test")
    page.get_by_label("Password", exact=True).fill("weak")
    page.get_by_label("Password again").fill("weak")
    page.get_by_role("button", name="Sign up").click()
    # The field is named, what was typed is kept (but not the password).
    expect(page.locator(".field.has-error")).to_contain_text("too short")
    expect(page.get_by_label("Organization name")).to_have_value("Browser Co")
    page.get_by_label("Password", exact=True).fill("a-strong-pass-phrase-9")
    page.get_by_label("Password again").fill("a-strong-pass-phrase-9")
    page.get_by_role("button", name="Sign up").click()

    raw = page.locator("#raw-key").inner_text()
    assert raw.startswith("ask_")
    page.get_by_role("link", name="Go to the dashboard").click()
    expect(page.locator("h1")).to_contain_text("Browser Co")
    assert page.url == f"{console}/dashboard/"
    member = Membership.objects.get(user__username="founder@browser.test")
    assert member.role == "owner" and member.organization.name == "Browser Co"


def test_settings_key_is_shown_once_works_in_the_sdk_and_revoke_gives_401(
        console: str, login, page: Page) -> None:
    tenant = make_tenant("browser-keys")
    login(page.context, make_member(tenant.org, "admin"))
    page.goto(f"{console}/settings/")
    page.get_by_label("Name").fill("sdk test")
    page.get_by_role("button", name="Issue key").click()
    raw = page.locator("#raw-key").inner_text()
    prefix = ApiKey.objects.get(organization=tenant.org, name="sdk test").prefix
    assert raw.startswith(prefix)

    page.reload()  # a reload is a new GET: the secret is gone
    expect(page.locator("#raw-key")).to_have_count(0)
    assert raw not in page.content()
    assert ApiKey.objects.filter(organization=tenant.org, name="sdk test").count() == 1
    expect(page.locator(f'tr[data-prefix="{prefix}"]')).to_contain_text("active")

    sdk = client_for(console, raw)
    reply = sdk.chat.completions.create(model="gpt-4o-mini",
                                        messages=[{"role": "user", "content": "Say hello"}])
    assert reply.choices[0].message.content

    page.once("dialog", lambda dialog: dialog.accept())  # the revoke confirmation
    page.locator(f'tr[data-prefix="{prefix}"]').get_by_role("button", name="Revoke").click()
    expect(page.locator(f'tr[data-prefix="{prefix}"]')).to_contain_text("revoked")
    deadline = time.monotonic() + 6  # revocation reaches the key cache within seconds
    while True:
        try:
            sdk.chat.completions.create(model="gpt-4o-mini",
                                        messages=[{"role": "user", "content": "Say hello"}])
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
            break
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)


def test_a_viewer_cannot_change_anything(console: str, login, page: Page) -> None:
    tenant = make_tenant("browser-viewer")
    login(page.context, make_member(tenant.org, "viewer"))
    policy_before = Policy.objects.filter(organization=tenant.org).values().get()
    keys_before = list(ApiKey.objects.filter(organization=tenant.org).values_list("prefix",
                                                                                "revoked_at"))
    for path in PAGES:
        response = page.goto(f"{console}{path}")
        assert response is not None and response.status == 200, path
        # Every control that could post a change is absent or disabled; logging out is not a
        # change to the organization.
        enabled = page.locator(
            "form[method=post]:not([action='/logout/']) button:enabled, "
            "form[method=post]:not([action='/logout/']) input[type=submit]:enabled")
        expect(enabled, f"an enabled change control on {path}").to_have_count(0)

    # Posting anyway, with a valid CSRF token, from the browser: refused.
    page.goto(f"{console}/settings/")
    status = page.evaluate("""async () => {
        const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
        const body = new URLSearchParams({csrfmiddlewaretoken: token, name: 'x', scopes: 'all'});
        const r = await fetch('/settings/keys/', {method: 'POST', body,
                                                   headers: {'Accept': 'text/html'}});
        return r.status;
    }""")
    assert status == 403
    assert Policy.objects.filter(organization=tenant.org).values().get() == policy_before
    assert list(ApiKey.objects.filter(organization=tenant.org)
                .values_list("prefix", "revoked_at")) == keys_before


@pytest.mark.parametrize("path", ["/", "/signup/", "/settings/", "/api-docs/"])
def test_readable_on_a_phone(console: str, login, page: Page, path: str) -> None:
    tenant = make_tenant(f"phone-{path.strip('/') or 'home'}")
    if path not in ("/", "/signup/"):
        login(page.context, make_member(tenant.org, "owner"))
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{console}{path}")
    # Nothing wider than the screen (wide tables scroll inside their own box), body text at least
    # 15 px, and the console's own font.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert size >= 15
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert family.strip('"').startswith("Inter") and "system-ui" in family  # with its fallback
    # The face is served from static/ and loads (a missing file would give no face).
    assert page.evaluate("document.fonts.load('15px Inter').then(faces => faces.length)") >= 1
