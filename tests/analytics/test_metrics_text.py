"""The Prometheus exposition of Asahi's metrics parses and carries the right families and labels."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics import metrics

ROOT = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """family name -> [(labels, value)] for every sample in the exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _value(samples: dict, name: str, **labels: str) -> float | None:
    for sample_labels, value in samples.get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    return None


def test_exposition_parses_and_has_all_families_with_labels() -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"  # the default registry is process-global: isolate by label
    metrics.observe_request(
        org=org,
        model="gpt-4o-mini",
        status="ok",
        cache_tier="miss",
        input_tokens=120,
        cached_input_tokens=30,
        output_tokens=45,
        cost_usd=0.0012,
    )
    metrics.observe_request(org=org, model="gpt-4o-mini", status="ok", cache_tier="semantic")
    metrics.observe_request(org=org, model="gpt-4o-mini", status="ok", cache_tier="semantic")
    metrics.observe_upstream(provider="openai", model=org, seconds=1.2)
    ratio = metrics.set_budget_utilization(org=org, period="monthly", spent_usd=75, limit_usd=100)
    metrics.set_circuit_state(provider="openai", model=org, state="half_open")

    text, content_type = metrics.render_latest()
    assert content_type.startswith("text/plain")
    samples = _samples(text.decode())

    assert (
        _value(
            samples,
            "asahi_requests_total",
            org=org,
            model="gpt-4o-mini",
            status="ok",
            cache_tier="semantic",
        )
        == 2.0
    )
    assert _value(samples, "asahi_requests_total", org=org, cache_tier="miss") == 1.0
    assert set(samples["asahi_requests_total"][0][0]) == {"org", "model", "status", "cache_tier"}
    assert _value(samples, "asahi_tokens_total", org=org, direction="input") == 120.0
    assert _value(samples, "asahi_tokens_total", org=org, direction="cached_input") == 30.0
    assert _value(samples, "asahi_tokens_total", org=org, direction="output") == 45.0
    assert _value(samples, "asahi_cost_usd_total", org=org, model="gpt-4o-mini") == pytest.approx(
        0.0012
    )
    assert _value(samples, "asahi_cache_hits_total", tier="semantic") >= 2.0
    # 1.2 s falls in le=1.5, not in le=1.0.
    assert _value(samples, "asahi_upstream_latency_seconds_bucket", model=org, le="1.0") == 0.0
    assert _value(samples, "asahi_upstream_latency_seconds_bucket", model=org, le="1.5") == 1.0
    assert (
        _value(samples, "asahi_upstream_latency_seconds_count", model=org, provider="openai") == 1.0
    )
    assert ratio == 0.75
    assert _value(samples, "asahi_budget_utilization_ratio", org=org, period="monthly") == 0.75
    assert _value(samples, "asahi_circuit_state", provider="openai", model=org) == 1.0


def test_counters_accumulate_across_calls() -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        metrics.observe_request(org=org, model="m", status="error", cost_usd=0.5)
    samples = _samples(metrics.render_latest()[0].decode())
    assert _value(samples, "asahi_requests_total", org=org, status="error") == 3.0
    assert _value(samples, "asahi_cost_usd_total", org=org) == pytest.approx(1.5)


def test_circuit_state_values() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    metrics.set_circuit_state(provider="p", model=model, state="open")
    samples = _samples(metrics.render_latest()[0].decode())
    assert _value(samples, "asahi_circuit_state", model=model) == 2.0
    metrics.set_circuit_state(provider="p", model=model, state=metrics.CircuitState.CLOSED)
    samples = _samples(metrics.render_latest()[0].decode())
    assert _value(samples, "asahi_circuit_state", model=model) == 0.0
    with pytest.raises(ValueError):
        metrics.set_circuit_state(provider="p", model=model, state=7)
    with pytest.raises(KeyError):
        metrics.set_circuit_state(provider="p", model=model, state="ajar")


def test_reimport_does_not_duplicate_registration() -> None:
    before = metrics.REQUESTS
    reloaded = importlib.reload(metrics)
    assert reloaded.REQUESTS is before
    assert reloaded.UPSTREAM_LATENCY is not None
    text = reloaded.render_latest()[0].decode()
    assert text.count("# TYPE asahi_requests_total counter") == 1


def test_multiprocess_mode_merges_workers(tmp_path: Path) -> None:
    """Two worker processes count into mmap files; a third renders their sum."""
    worker = textwrap.dedent(
        """
        from analytics import metrics
        metrics.observe_request(org="mp", model="m", status="ok", cost_usd=0.25)
        metrics.set_budget_utilization(org="mp", period="monthly", spent_usd=1, limit_usd=4)
        """
    )
    reader = textwrap.dedent(
        """
        from analytics import metrics
        print(metrics.render_latest()[0].decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, cwd=ROOT, check=True)
    out = subprocess.run(
        [sys.executable, "-c", reader],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = _samples(out)
    assert _value(samples, "asahi_requests_total", org="mp") == 2.0
    assert _value(samples, "asahi_cost_usd_total", org="mp") == pytest.approx(0.5)
    assert _value(samples, "asahi_budget_utilization_ratio", org="mp") == 0.25
