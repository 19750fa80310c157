"""Benchmark analytics at scale: bulk-generate ledger rows, fold them, time every endpoint.

    python manage.py bench_analytics --rows 10000000 --days 90 --orgs 5

Writes into the configured database (use a scratch one: DATABASE_URL=...). Generated rows carry
request ids prefixed `bench-`; the ledger is append-only, so they stay until the database goes.
Rows are generated oldest first, evenly over `--days`, as the gateway appends them (which the BRIN
index on `created_at` that the fold's range scan uses relies on).
"""

from __future__ import annotations

import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client

GENERATE_SQL = """
INSERT INTO inference_inferenceevent (
    created_at, request_id, organization_id, api_key_id, endpoint, model, provider, task_type,
    routing_mode, routing_reason, cache_tier, status, http_status, error_code, input_tokens,
    cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
    baseline_cost_usd, latency_ms, stream, "user")
SELECT now() - ((%(rows)s - g + random()) / %(rows)s * %(days)s * interval '1 day'),
       'bench-' || g, (%(orgs)s::uuid[])[1 + g %% %(n_orgs)s],
       (%(keys)s::bigint[])[1 + (g %% %(n_orgs)s) * %(kpo)s + (g / 7) %% %(kpo)s],
       'chat', (ARRAY['gpt-4o-mini','gpt-4o','claude-haiku-4-5','claude-sonnet-4-5',
                      'command-r'])[1 + (g / 3) %% 5],
       'openai', (ARRAY['qa','code','summarization','chat'])[1 + (g / 11) %% 4], 'autopilot', '',
       CASE WHEN g %% 10 < 7 THEN 0 ELSE 1 + g %% 3 END,
       CASE WHEN g %% 50 = 0 THEN 'error' ELSE 'ok' END, 200, '',
       (random() * 3000)::int, 0, 0, (random() * 800)::int, 0,
       CASE WHEN g %% 10 < 7 THEN round((random() * 0.02)::numeric, 9) ELSE 0 END,
       round((random() * 0.04)::numeric, 9), exp(5 + random() * 3), false, ''
FROM generate_series(%(lo)s, %(hi)s) AS g
"""

ENDPOINTS = (
    "/metrics",
    "/analytics/cost-summary?period=24h",
    "/analytics/cost-summary?period=30d",
    "/analytics/cost-breakdown?by=model&period=30d",
    "/analytics/cost-breakdown?by=period&period=30d",
    "/analytics/trends?metric=cost&period=7d&interval=hour",
    "/analytics/cache-performance?period=7d",
    "/analytics/latency-percentiles?period=7d",
    "/analytics/recent-inferences?limit=100",
    "/analytics/forecast",
    "/analytics/anomalies",
    "/analytics/anomalies?hours=720",
    "/analytics/recommendations",
    "/analytics/cost-breakdown?by=key&period=30d",
    "/analytics/trends?metric=latency&period=30d&interval=day",
    "/analytics/cost-summary?period=month",
)

PAGES = (
    "/dashboard/",
    "/dashboard/?period=30d",
    "/dashboard/live/",
    "/analytics/?period=7d",
    "/cache/",
)


class Command(BaseCommand):
    help = "Generate ledger rows, run the rollup and time the analytics endpoints."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--orgs", type=int, default=5)
        parser.add_argument("--keys-per-org", type=int, default=3)
        parser.add_argument("--calls", type=int, default=20)
        parser.add_argument("--ledger-rows", type=int, default=50_000)
        parser.add_argument("--skip-generate", action="store_true")
        parser.add_argument("--pages-only", action="store_true",
                            help="with --skip-generate: time only the console pages")

    def handle(self, *args: Any, **o: Any) -> None:
        from analytics.rollup import run_rollup
        from governance.services import api_key_issue, organization_create

        out = self.stdout.write
        if o["skip_generate"]:
            # Time the organizations of the latest generated run (new keys: raw keys are not kept).
            orgs = self._latest_bench_orgs()
            keys = [api_key_issue(organization=org, actor="bench", scopes=["analytics"])
                    for org in orgs]
        else:
            tag = uuid.uuid4().hex[:6]
            orgs = [organization_create(name=f"bench-{tag}-{i}", actor="bench")
                    for i in range(o["orgs"])]
            keys = [api_key_issue(organization=org, actor="bench", scopes=["analytics"])
                    for org in orgs for _ in range(o["keys_per_org"])]
            started = time.perf_counter()
            chunk = 1_000_000
            for lo in range(1, o["rows"] + 1, chunk):
                hi = min(lo + chunk - 1, o["rows"])
                with connection.cursor() as cur:
                    cur.execute(GENERATE_SQL, {
                        "days": o["days"], "orgs": [str(x.id) for x in orgs],
                        "n_orgs": len(orgs), "keys": [k.key.pk for k in keys],
                        "kpo": o["keys_per_org"], "lo": lo, "hi": hi,
                        "rows": o["rows"]})
                out(f"  generated {hi:,} rows ({time.perf_counter() - started:.1f} s)")
            gen = time.perf_counter() - started
            out(f"generate: {o['rows']:,} rows in {gen:.1f} s ({o['rows'] / gen:,.0f} rows/s)")
            with connection.cursor() as cur:
                cur.execute("ANALYZE inference_inferenceevent")
            result = run_rollup(full=True)
            out(f"rollup (full): {result.hourly_rows:,} hourly + {result.daily_rows:,} daily "
                f"rows in {result.duration_ms / 1000:.1f} s")
        if o["pages_only"]:
            self._time_pages(orgs[0], o["calls"])
            return
        result = run_rollup()
        out(f"rollup (incremental, 10 min lateness): {result.hourly_rows:,} hourly + "
            f"{result.daily_rows:,} daily rows in {result.duration_ms:.0f} ms")
        with connection.cursor() as cur:
            cur.execute("ANALYZE analytics_usagerollup")
        self._anomaly_scan(orgs)

        from django.test.utils import override_settings
        from django.urls import Resolver404, resolve

        try:
            resolve("/analytics/cost-summary")
            urlconf = None
        except Resolver404:  # analytics URLs not wired into the project yet
            urlconf = "tests.analytics.urls"
        with override_settings(**({"ROOT_URLCONF": urlconf} if urlconf else {})):
            self._time_endpoints(orgs, keys, o["calls"])
        self._time_pages(orgs[0], o["calls"])
        self._ledger_throughput(orgs[0].id, keys[0].key.pk, o["ledger_rows"])

    def _latest_bench_orgs(self) -> list[Any]:
        from governance.models import Organization

        latest = (Organization.objects.filter(name__startswith="bench-")
                  .order_by("-created_at").first())
        if latest is None:
            raise SystemExit("--skip-generate: no bench organizations in this database")
        prefix = latest.name.rsplit("-", 1)[0] + "-"
        return list(Organization.objects.filter(name__startswith=prefix).order_by("name"))

    def _anomaly_scan(self, orgs: list[Any]) -> None:
        """What the alerts task does every 5 minutes, per organization (run twice: the first
        scan of an organization covers its 14-day history, later ones the 24 h rescan window)."""
        from analytics.anomaly_findings import scan_org_anomalies

        out = self.stdout.write
        for run in (1, 2):
            times, found, keys, since = [], 0, 0, set()
            for org in orgs:
                result = scan_org_anomalies(org=org)
                times.append(result.duration_ms)
                found += len(result.findings)
                keys += result.keys_scanned
                since.add(result.report_since.isoformat(timespec="minutes"))
            out(f"anomaly scan #{run} (findings ending since {min(since)}): {len(orgs)} orgs, "
                f"{keys} keys, {found} findings; per org {statistics.median(times):.0f} ms "
                f"median, {max(times):.0f} ms max")
        from analytics.insights_bridge import org_anomalies

        for include_keys, label in ((False, "organization only (endpoint fallback)"),
                                    (True, "organization + every key (the old endpoint)")):
            t0 = time.perf_counter()
            org_anomalies(org=orgs[0], include_keys=include_keys)
            out(f"anomalies on demand, {label}: {(time.perf_counter() - t0) * 1000:.0f} ms")

    def _time_endpoints(self, orgs: list[Any], keys: list[Any], calls: int) -> None:
        out = self.stdout.write
        client = Client()
        key = next(k for k in keys if k.key.organization_id == orgs[0].id)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key.raw}"}
        out(f"\n{'endpoint':58} {'p50 ms':>9} {'p95 ms':>9}")
        for path in ENDPOINTS:
            timings = []
            for _ in range(calls):
                t0 = time.perf_counter()
                r = client.get(path, **headers)  # type: ignore[arg-type]
                timings.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {r.status_code} {r.content[:300]!r}")
            timings.sort()
            p95 = timings[min(len(timings) - 1, int(0.95 * len(timings)))]
            out(f"{path:58} {statistics.median(timings):9.1f} {p95:9.1f}")

    def _time_pages(self, org: Any, calls: int) -> None:
        """The console's pages as a viewer of the organization sees them (session, templates,
        the same selectors), timed in-process like the endpoints."""
        from django.contrib.auth import get_user_model

        from governance.models import Membership

        out = self.stdout.write
        user = get_user_model().objects.create_user(f"bench-viewer-{uuid.uuid4().hex[:8]}")
        Membership.objects.create(organization=org, user=user, role="viewer")
        client = Client()
        client.force_login(user)
        out(f"\n{'console page':58} {'p50 ms':>9} {'p95 ms':>9}")
        for path in PAGES:
            timings = []
            for _ in range(calls):
                t0 = time.perf_counter()
                r = client.get(path)
                timings.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {r.status_code} {r.content[:300]!r}")
            timings.sort()
            p95 = timings[min(len(timings) - 1, int(0.95 * len(timings)))]
            out(f"{path:58} {statistics.median(timings):9.1f} {p95:9.1f}")

    def _ledger_throughput(self, org_id: uuid.UUID, key_id: int, n: int) -> None:
        from inference.ledger import LedgerRow, ledger

        rows = [LedgerRow(request_id=f"bench-ledger-{i}", organization_id=org_id,
                          api_key_id=key_id, endpoint="chat", model="gpt-4o-mini",
                          cost_usd=Decimal("0.000123456"), latency_ms=420.0)
                for i in range(n)]
        t0 = time.perf_counter()
        for row in rows:
            ledger.append(row)
        appended = time.perf_counter() - t0
        ledger.flush()
        total = time.perf_counter() - t0
        self.stdout.write(f"\nledger: append {n:,} rows {n / appended:,.0f} rows/s (hot path); "
                          f"append + bulk insert {n / total:,.0f} rows/s")
