"""`/analytics/prometheus`: the process registry plus exact ledger-derived totals as gauges."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from analytics import metrics, selectors

_LEDGER_GAUGES = (
    ("asahi_ledger_requests", "Requests in the ledger (all time).", 3),
    ("asahi_ledger_input_tokens", "Input tokens in the ledger (all time).", 4),
    ("asahi_ledger_output_tokens", "Output tokens in the ledger (all time).", 5),
    ("asahi_ledger_cost_usd", "Upstream cost in USD from the ledger (all time).", 6),
    ("asahi_ledger_baseline_cost_usd", "Cost at the reference model in USD (all time).", 7),
    ("asahi_ledger_cache_hits", "Served cache hits in the ledger (all time).", 8),
)


def ledger_registry(*, org_ids: list[uuid.UUID] | None) -> CollectorRegistry:
    """A throwaway registry with one gauge per ledger total, labelled org/model/status."""
    registry = CollectorRegistry(auto_describe=True)
    gauges = [(Gauge(name, doc, ("org", "model", "status"), registry=registry), col)
              for name, doc, col in _LEDGER_GAUGES]
    for row in selectors.org_totals_all(org_ids=org_ids):
        org, model, status = str(row[0]), row[1] or "", row[2]
        for gauge, col in gauges:
            gauge.labels(org=org, model=model, status=status).set(float(row[col] or 0))
    return registry


def render(*, org_ids: list[uuid.UUID] | None) -> tuple[bytes, str]:
    """In-process metrics (all organizations' counters only for the scrape token) + ledger."""
    if org_ids is None:
        process, content_type = metrics.render_latest()
    else:
        # A tenant key must not read other tenants' labelled counters: ledger gauges only.
        process, content_type = b"", metrics.CONTENT_TYPE_LATEST
    return process + generate_latest(ledger_registry(org_ids=org_ids)), content_type
