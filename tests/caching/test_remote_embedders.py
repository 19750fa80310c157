"""Remote embedders through the official SDKs, over HTTP to the fake upstream, and in the gateway."""

from __future__ import annotations

import time

import numpy as np
import pytest

from caching.models import SemanticEntry
from caching.semantic.embedders import COLUMN_WIDTH, build_embedder, fit_width
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


@pytest.mark.parametrize(("spec", "name", "version"), [
    ("openai", "openai", "text-embedding-3-small"),
    ("cohere", "cohere", "embed-english-light-v3.0"),
    ("openai:text-embedding-3-large", "openai", "text-embedding-3-large"),
])
def test_remote_embedder_returns_column_wide_unit_rows(upstream_env, spec, name, version) -> None:
    embedder = build_embedder(spec)
    assert (embedder.name, embedder.version, embedder.dim) == (name, version, COLUMN_WIDTH)
    vectors = embedder.embed(["How do I bake bread?", "Who won the match?", "How do I bake bread?"])
    assert vectors.shape == (3, COLUMN_WIDTH) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2])  # same text, same vector (row order kept)
    assert abs(float(vectors[0] @ vectors[1])) < 0.5
    assert embedder.embed([]).shape == (0, COLUMN_WIDTH)


def test_fit_width_pads_with_zeros_and_refuses_wider_rows() -> None:
    rows = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    padded = fit_width(rows, 4)
    assert padded.shape == (2, 4) and np.allclose(padded[:, 2:], 0.0)
    assert np.allclose(padded @ padded.T, rows @ rows.T)  # cosines unchanged
    with pytest.raises(ValueError, match="3 dimensions"):
        fit_width(np.ones((1, 3), dtype=np.float32), 2)


def test_unknown_embedder_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedder"):
        build_embedder("word2vec")


def test_gateway_uses_the_configured_remote_embedder(gateway, live_tenant, settings) -> None:
    settings.ASAHI_SEMANTIC_EMBEDDER = "openai"
    client = client_for(gateway, live_tenant.infer.raw)
    prompt = "What are the opening hours of the Prado museum?"
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], temperature=0.1)
    assert first.headers["x-asahi-cache"] == "miss"
    deadline = time.monotonic() + 10
    while not SemanticEntry.objects.filter(organization_id=live_tenant.org.pk).exists():
        assert time.monotonic() < deadline, "semantic entry was not stored"
        time.sleep(0.05)
    entry = SemanticEntry.objects.get(organization_id=live_tenant.org.pk)
    assert entry.embedder == "openai:text-embedding-3-small"
    # Another temperature: not the exact key, but the same text through the remote embedder.
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], temperature=0.2)
    assert second.headers["x-asahi-cache"] == "semantic", second.headers
    assert float(second.headers["x-asahi-cache-similarity"]) > 0.99
