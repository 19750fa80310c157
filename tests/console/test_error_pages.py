"""Browsers get 404/403/500 and CSRF failures as pages in the console's look, with the request id;
API clients (the SDKs' Accept: application/json, curl's */*, anything under /v1/) keep the JSON
error shape."""

from __future__ import annotations

import pytest
from django.http import HttpRequest
from django.test import Client
from django.urls import include, path

from tests.console.conftest import ConsoleOrg

pytestmark = pytest.mark.django_db
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def boom(request: HttpRequest) -> None:
    raise RuntimeError("kaboom")


urlpatterns = [path("boom/", boom), path("", include("asahi_project.urls"))]
handler400 = "asahi_project.errors.handler400"
handler403 = "asahi_project.errors.handler403"
handler404 = "asahi_project.errors.handler404"
handler500 = "asahi_project.errors.handler500"


def _is_html_page(response, status: int) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "console/console.css" in html and f'<div class="code">{status}</div>' in html
    assert response["X-Request-ID"] in html


def _is_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and body["request_id"] == response["X-Request-ID"]


def test_404_html_for_browsers_json_for_api_clients(client: Client) -> None:
    _is_html_page(client.get("/no/such/page/", HTTP_ACCEPT=HTML), 404)
    _is_json_error(client.get("/no/such/page/", HTTP_ACCEPT="application/json"), 404, "not_found")
    _is_json_error(client.get("/no/such/page/", HTTP_ACCEPT="*/*"), 404, "not_found")
    _is_json_error(client.get("/v1/nothing", HTTP_ACCEPT=HTML), 404, "not_found")


def test_403_html_for_browsers_json_for_api_clients(org_a: ConsoleOrg) -> None:
    viewer = org_a.client("viewer")
    response = viewer.post("/settings/keys/", {"scopes": ["infer"]}, HTTP_ACCEPT=HTML)
    _is_html_page(response, 403)
    assert "needs the admin role" in response.content.decode()
    _is_json_error(viewer.post("/settings/keys/", {"scopes": ["infer"]},
                               HTTP_ACCEPT="application/json"), 403, "permission_denied")


@pytest.mark.urls("tests.console.test_error_pages")
def test_500_html_for_browsers_json_for_api_clients() -> None:
    client = Client(raise_request_exception=False)
    _is_html_page(client.get("/boom/", HTTP_ACCEPT=HTML), 500)
    _is_json_error(client.get("/boom/", HTTP_ACCEPT="application/json"), 500, "internal_error")


def test_csrf_is_enforced_on_console_forms(org_a: ConsoleOrg) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(org_a.users["owner"])
    response = client.post("/settings/keys/", {"scopes": ["infer"]}, HTTP_ACCEPT=HTML)
    _is_html_page(response, 403)
    assert "Form expired" in response.content.decode()
    # With the token from the page, the same post goes through.
    page = client.get("/settings/")
    token = page.context["csrf_token"]
    ok = client.post("/settings/keys/", {"scopes": ["infer"], "csrfmiddlewaretoken": str(token)})
    assert ok.status_code == 200 and ok.context["raw_key"]


def test_every_console_form_carries_a_csrf_token(org_a: ConsoleOrg) -> None:
    for page in ("/settings/", "/login/", "/signup/", "/password/reset/"):
        client = org_a.client("owner") if page == "/settings/" else Client()
        html = client.get(page).content.decode()
        forms = html.count('method="post"')
        assert forms and html.count('name="csrfmiddlewaretoken"') == forms, page
