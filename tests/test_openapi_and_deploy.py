"""OpenAPI, Swagger UI and ReDoc work offline; the deploy checks pass with production values."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db


def test_openapi_lists_every_public_path(client: Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    import json

    paths = json.loads(response.content)["paths"]
    for path in ("/v1/chat/completions", "/infer", "/v1/embeddings", "/models", "/feedback",
                 "/signup", "/governance/api-keys", "/governance/audit",
                 "/governance/compliance/report", "/analytics/cost-summary", "/metrics"):
        assert path in paths, path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_url(client: Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls, "the page loads its assets"
    assert all(not u.startswith(("http://", "https://", "//")) for u in urls), urls
    for asset in urls:
        if asset.startswith("/static/"):
            assert client.get(asset).status_code == 200, asset


def test_check_deploy_is_clean_with_production_values() -> None:
    env = {**os.environ, "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-" + "y" * 30,
           "ASAHI_ENCRYPTION_KEY": "0" * 64, "ALLOWED_HOSTS": "asahi.example.com",
           "SECURE_SSL_REDIRECT": "true", "SESSION_COOKIE_SECURE": "true",
           "SECURE_HSTS_SECONDS": "31536000", "SECURE_HSTS_PRELOAD": "true",
           "DJANGO_DEBUG": "false"}
    env.pop("ASAHI_TESTING", None)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                             "WARNING"], cwd=settings.BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
