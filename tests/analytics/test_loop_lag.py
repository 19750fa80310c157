"""The event-loop lag monitor over a real server: the metric is on /analytics/prometheus, near zero
while idle, and it shows a real stall of the server's loop."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakeup import fake_upstream  # noqa: F401
from tests.inference.conftest import asahi_url, gateway, upstream_env  # noqa: F401


def _scrape(base_url: str, key: str, prefix: str = "asahi_event_loop_lag") -> dict[str, float]:
    r = httpx.get(f"{base_url}/analytics/prometheus", timeout=10,
                  headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return {s.name + "".join("{" + k + "=" + v + "}" for k, v in sorted(s.labels.items())
                             if k in ("le", "generation")): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples if s.name.startswith(prefix)}


def test_loop_lag_metric_appears_and_shows_a_blocked_loop(gateway, settings):  # noqa: F811
    from analytics import loop_lag

    # Process metrics are for the operator's scrape token (a tenant key sees ledger gauges only).
    settings.ASAHI_METRICS_SCRAPE_TOKEN = key = "scrape-loop-lag-test"
    _scrape(gateway, key)  # the first request starts the monitor on the server's loop
    time.sleep(0.5)
    start = _scrape(gateway, key)  # the histogram is per process: compare against this
    time.sleep(1.0)
    idle = _scrape(gateway, key)
    count, fast = "asahi_event_loop_lag_seconds_count", "asahi_event_loop_lag_seconds_bucket{le=0.01}"
    assert idle[count] - start[count] >= 3
    # Idle, every sample is under 10 ms (one spare for a busy shared host).
    assert idle[fast] - start[fast] >= idle[count] - start[count] - 1, (start, idle)

    # A real blocking call on the server's loop (and on any other running loop the monitor is on:
    # other tests' in-process ASGI calls may have started one; blocking those changes nothing).
    for lp in [lp for lp in loop_lag._started if lp.is_running()]:
        lp.call_soon_threadsafe(time.sleep, 0.6)
    time.sleep(0.9)
    blocked = _scrape(gateway, key)
    assert blocked["asahi_event_loop_lag_max_seconds"] >= 0.4, blocked
    above_quarter = (blocked["asahi_event_loop_lag_seconds_count"]
                     - blocked["asahi_event_loop_lag_seconds_bucket{le=0.25}"])
    assert above_quarter >= 1, blocked


def test_asgi_app_freezes_startup_objects_and_reports_gc_pauses(gateway, settings):  # noqa: F811
    """The web process's start-up objects sit outside the collector's passes (a full pass over
    them cost ~190 ms of CPU), and every collection's pause is on /analytics/prometheus."""
    import gc

    import asahi_project.asgi  # noqa: F401 - what the server process imports

    assert gc.get_freeze_count() > 100_000  # the URLconf, Django, the SDKs: ~325,000 objects
    settings.ASAHI_METRICS_SCRAPE_TOKEN = key = "scrape-gc-test"
    full = "asahi_gc_pause_seconds_count{generation=2}"
    before = _scrape(gateway, key, "asahi_gc_pause").get(full, 0.0)
    gc.collect()  # the server runs in this process: a full pass there
    after = _scrape(gateway, key, "asahi_gc_pause")
    assert after[full] >= before + 1, after


pytestmark = [pytest.mark.redis]
