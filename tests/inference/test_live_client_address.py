"""Client addresses through a real server: a rotating X-Forwarded-For from a local peer is not
a new client. (uvicorn's own proxy handling would rewrite the peer from the header before Asahi
sees it, so every launch of Asahi turns it off; the test server is launched the same way.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.governance.test_client_ip import signup_rate  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.redis
def test_rotating_forwarded_for_flood_is_throttled_over_http(asahi_url, transactional_db,
                                                             settings, signup_rate) -> None:  # noqa: F811
    settings.TRUST_X_FORWARDED_FOR = False
    settings.ASAHI_TRUSTED_PROXIES = []
    codes = [httpx.post(f"{asahi_url}/signup", json={"org_name": f"Flood {i}", "user_id": "u"},
                        headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}, timeout=10).status_code
             for i in range(8)]
    assert codes == [201] * 3 + [429] * 5


@pytest.mark.parametrize("launcher", ["asahi", "Dockerfile", "docker-compose.yml"])
def test_every_launch_turns_off_the_servers_proxy_headers(launcher: str) -> None:
    lines = [line for line in (ROOT / launcher).read_text().splitlines()
             if "uvicorn" in line and "asahi_project.asgi:application" in line]
    assert lines, f"no uvicorn launch found in {launcher}"
    text = (ROOT / launcher).read_text()
    for line in lines:
        # The flag may sit on the launch line or its continuation.
        start = text.index(line)
        assert "--no-proxy-headers" in text[start:start + len(line) + 200], line
