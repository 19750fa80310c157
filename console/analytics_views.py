"""Analytics page: breakdowns, trends, forecast, anomalies, recommendations and latency percentiles
for a period, all from the analytics selectors and insights (the same functions as the JSON API);
and the ledger of the period as a streamed CSV download.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from analytics import anomaly_findings, insights_bridge, selectors
from console.access import current_organization, role_required
from console.dashboard import PeriodForm

BREAKDOWNS = (("model", "Model"), ("provider", "Provider"), ("key", "API key"),
              ("tier", "Cache tier"), ("task_type", "Task type"))
PERIOD_HOURS = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30, "day": 24, "month": 24 * 31}


def _breakdown(org_id: Any, by: str, since: Any) -> list[dict[str, Any]]:
    rows = selectors.breakdown(org_ids=[org_id], by=by, since=since)
    total = sum((r.cost_usd for r in rows), Decimal(0))
    return [{"key": r.key, "requests": r.requests, "cost": r.cost_usd,
             "saved": r.baseline_cost_usd - r.cost_usd, "hits": r.cache_hits,
             "share": float(r.cost_usd / total * 100) if total else 0.0} for r in rows]


@role_required("viewer")
def analytics_page(request: HttpRequest) -> HttpResponse:
    form = PeriodForm(request.GET)
    period = form.chosen()
    org = current_organization(request)
    since = selectors.period_since(period)
    interval = "hour" if period in ("24h", "day") else "day"
    cost = selectors.trend(org_ids=[org.id], metric="cost", since=since, interval=interval)
    requests = selectors.trend(org_ids=[org.id], metric="requests", since=since,
                               interval=interval)
    hit_rate = selectors.trend(org_ids=[org.id], metric="cache_hit_rate", since=since,
                               interval=interval)
    overall, per_model = selectors.latency_percentiles(org_ids=[org.id], since=since)
    anomalies = anomaly_findings.recent_anomalies(org=org, hours=PERIOD_HOURS[period])
    context = {
        "org": org, "form": form, "period": period, "periods": selectors.PERIODS,
        "since": since, "interval": interval, "totals": selectors.totals(org_ids=[org.id],
                                                                         since=since),
        "breakdowns": [{"by": by, "label": label, "rows": _breakdown(org.id, by, since)}
                       for by, label in BREAKDOWNS],
        "trend": {"t": [int(at.timestamp()) for at, _ in cost], "cost": [v for _, v in cost],
                  "requests": [v for _, v in requests],
                  "hit_rate": [round(v * 100, 2) for _, v in hit_rate]},
        "forecast": insights_bridge.month_forecast(org=org),
        "anomalies": anomalies,
        "recommendations": insights_bridge.org_recommendations(org=org),
        "latency": overall, "latency_by_model": sorted(per_model.items()),
        "quantiles": [name for name, _ in selectors.QUANTILES],
    }
    return render(request, "console/analytics.html", context,
                  status=200 if form.is_valid() else 400)


CSV_COLUMNS = ("created_at", "request_id", "api_key_prefix", "endpoint", "model", "provider",
               "task_type", "routing_mode", "routing_reason", "cache_tier", "cache_similarity",
               "cache_reason", "status", "http_status", "error_code", "input_tokens",
               "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
               "cost_usd", "baseline_cost_usd", "latency_ms", "stream", "user")


class _Echo:
    def write(self, value: str) -> str:
        return value


PAGE = 2000


def _ledger_page(org_id: Any, since: Any, after: tuple[Any, int] | None) -> list[tuple[Any, ...]]:
    """The next page of the ledger, keyset-paginated on (created_at, id): the (organization,
    created_at) index serves every page, however deep the download is."""
    from django.db.models import Q

    from inference.models import InferenceEvent

    qs = InferenceEvent.objects.filter(organization_id=org_id, created_at__gte=since)
    if after is not None:
        qs = qs.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
    fields = ["api_key__prefix" if c == "api_key_prefix" else c for c in CSV_COLUMNS]
    return list(qs.order_by("created_at", "id").values_list("id", *fields)[:PAGE])


async def _csv_rows(org_id: Any, since: Any) -> AsyncIterator[str]:
    """The ledger itself (the download is the record, not a rollup), streamed page by page: an
    async iterator, because Django's ASGI handler would read a sync one whole before sending."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    after = None
    while True:
        page = await sync_to_async(_ledger_page)(org_id, since, after)
        if not page:
            return
        yield "".join(writer.writerow([_cell(v) for v in row[1:]]) for row in page)
        after = (page[-1][1], page[-1][0])
        if len(page) < PAGE:
            return


def _cell(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # a spreadsheet must not run a cell as a formula
    return value


@role_required("viewer")
def ledger_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = PeriodForm(request.GET)
    if not form.is_valid():  # the page, with the field's error, instead of a file
        return analytics_page(request)
    period = form.chosen()
    org = current_organization(request)
    since = selectors.period_since(period)
    response = StreamingHttpResponse(_csv_rows(org.id, since), content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="asahi-ledger-{period}-{since:%Y%m%dT%H%M}.csv"')
    return response
