"""Fixtures of the cache tests: the live gateway from the inference tests, and a URLconf with the
cache management API (the lead includes `caching.urls` in the project URLconf)."""

import pytest

from tests.fakeup import fake_upstream  # noqa: F401  (fixture)
from tests.inference.conftest import (  # noqa: F401  (fixtures)
    asahi_url,
    gateway,
    live_tenant,
    upstream_env,
)


@pytest.fixture(scope="module")
def warm_embedder() -> None:
    """Load the local embedder before the first request: its first load exceeds the lookup's
    time budget, which would make that request a bypass."""
    from caching.semantic.embedders import get_local_embedder

    get_local_embedder().embed(["warm up"])
