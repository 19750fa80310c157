"""A new user with only a browser, against a running Asahi (`./asahi up`), not the test server:
signup -> dashboard (live socket) -> playground, its row arriving on the open dashboard -> issue a
key in settings -> use it from the openai SDK -> analytics and its CSV. Prints what it saw; exits
non-zero at the first step that does not happen.

    .venv/bin/python tests/console/browser/walk_running_server.py [http://127.0.0.1:8000]

Needs Debian's chromium (/usr/bin/chromium) and the dev dependencies (playwright, openai).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import openai
from playwright.sync_api import expect, sync_playwright

PASSWORD = "a-strong-pass-phrase-9"


def walk(base: str) -> None:
    tag = uuid.uuid4().hex[:6]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        ctx = browser.new_context(viewport={"width": 1360, "height": 1000})
        page = ctx.new_page()
        page.goto(f"{base}/")
        page.locator("main").get_by_role("link", name="Sign up").click()
        page.get_by_label("Organization name").fill(f"Walk Co {tag}")
        page.get_by_label("Email").fill(f"walker-{tag}@example.com")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password again").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        print("signup: first key shown once,", page.locator("#raw-key").inner_text()[:14] + "...")
        page.get_by_role("link", name="Go to the dashboard").click()
        expect(page.locator("h1")).to_contain_text(f"Walk Co {tag}")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
        print("dashboard: socket live")

        play = ctx.new_page()
        play.goto(f"{base}/playground/")
        play.fill("#id_prompt", "Which three rivers run through Vienna?")
        play.select_option("#id_model", "gpt-4o-mini")
        play.click("#run")
        form = play.locator("#playground-form")
        expect(form).to_have_attribute("data-state", "done", timeout=15_000)
        answered = time.monotonic()
        facts = {n: play.locator(f'[data-fact="{n}"]').inner_text()
                 for n in ("request_id", "model", "cost_usd", "cache", "routing_reason")}
        print("playground:", facts)
        row = page.locator(f'#latest tr[data-request-id="{facts["request_id"]}"]')
        expect(row).to_be_visible(timeout=2_000)
        print(f"dashboard: the row arrived {time.monotonic() - answered:.2f} s after the answer")

        page.goto(f"{base}/settings/")
        page.get_by_label("Name").fill("from the sdk")
        page.get_by_role("button", name="Issue key").click()
        raw = page.locator("#raw-key").inner_text()
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=raw)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello from the walk"}])
        print("sdk with the issued key:", reply.model, reply.choices[0].message.content)

        time.sleep(2)  # the ledger writer's flush interval
        page.goto(f"{base}/analytics/")
        with page.expect_download() as download:
            page.click("#csv")
        rows = Path(download.value.path()).read_text().splitlines()
        print("analytics: CSV lines (header + ledger rows):", len(rows))
        page.screenshot(path="walk_analytics.png")
        browser.close()


if __name__ == "__main__":
    walk(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
