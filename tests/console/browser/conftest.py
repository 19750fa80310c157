"""Browser tests: Playwright drives Debian's chromium against the real ASGI app (uvicorn, so the
dashboard's websocket works), the test database, real Redis and the fake upstream.

Playwright's own browser download is not reachable, so the launch points at /usr/bin/chromium
(`.ci/run` installs it). Sessions are created server-side and handed to the browser as a cookie:
logging in through the form is the login page's own test, not every test's setup.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.fakeup import fake_upstream  # noqa: F401  (fixture)
from tests.inference.conftest import asahi_url, gateway, upstream_env  # noqa: F401

CHROMIUM = os.environ.get("ASAHI_CHROMIUM", "/usr/bin/chromium")


def _is_browser_test(item: pytest.Item) -> bool:
    return "tests/console/browser" in str(item.fspath)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Last in the session, the slowest tests: and while a browser is open Playwright's event loop
    # runs in the main thread (see `browser`), which no other test must run beside.
    items[:] = [i for i in items if not _is_browser_test(i)] + [i for i in items
                                                                  if _is_browser_test(i)]
    if os.path.exists(CHROMIUM) or shutil.which(CHROMIUM):
        return
    if os.environ.get("ASAHI_REQUIRE_BROWSER"):  # .ci/run installs chromium: missing fails
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
    for item in items:
        if _is_browser_test(item):
            item.add_marker(skip)


# Our own browser fixtures rather than pytest-playwright's: its `playwright` fixture is
# session-scoped, and the event loop it leaves running in the main thread makes every later
# test's `async_to_sync` fail ("cannot use AsyncToSync in the same thread as an async event loop").
# Module scope: the loop is gone when the browser tests are.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    # While the browser is open its event loop runs in this thread, and Django would refuse the
    # tests' own ORM calls (setup, assertions) as "called from an async context". Set for these
    # modules only: the variable must not leak into the rest of the session.
    with pytest.MonkeyPatch.context() as mp, sync_playwright() as pw:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        launched = pw.chromium.launch(executable_path=CHROMIUM,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def console(gateway: str) -> str:  # noqa: F811
    """Base URL of the live server (transactional database, fresh catalogue)."""
    return gateway


def make_member(org: Any, role: str, email: str | None = None) -> Any:
    from django.contrib.auth import get_user_model

    from governance.models import Membership

    email = email or f"{role}-{org.pk.hex[:8]}@example.com"
    user = get_user_model().objects.create_user(username=email, email=email,
                                                password="correct horse battery staple")
    Membership.objects.create(organization=org, user=user, role=role)
    return user


def run_prompt(page: Any, base: str, prompt: str, *, cache: bool = True) -> dict[str, str]:
    """Run a prompt in the playground page and return the facts it shows once done."""
    from playwright.sync_api import expect

    if not page.url.endswith("/playground/"):
        page.goto(f"{base}/playground/")
    page.fill("#id_prompt", prompt)
    page.select_option("#id_model", "gpt-4o-mini")
    page.set_checked("#id_cache", cache)
    page.click("#run")
    expect(page.locator("#playground-form")).to_have_attribute("data-state", "done", timeout=15_000)
    return {name: page.locator(f'[data-fact="{name}"]').inner_text()
            for name in ("model", "cost_usd", "cache", "request_id", "routing_reason")}


@pytest.fixture
def login(console: str) -> Callable[[Any, Any], None]:
    """login(context, user): a real session row for `user`, its cookie given to the browser."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    def do(context: Any, user: Any) -> None:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME,
                              "value": session.session_key, "url": console}])

    return do
