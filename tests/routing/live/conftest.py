"""Live-gateway fixtures for routing tests.

`tests/routing/conftest.py` defines `catalogue` as a list of router Candidates; here it is the
seeded database catalogue again (what the gateway fixture needs). Routing state cached per process
(quality estimates, enrichment contexts) is dropped around each test so no test sees another's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakeup import fake_upstream  # noqa: F401  (fixture)
from tests.inference.conftest import (  # noqa: F401  (fixtures)
    asahi_url,
    gateway,
    live_tenant,
    upstream_env,
)


@pytest.fixture
def catalogue(db: None) -> None:
    from inference.catalogue import seed_catalogue

    seed_catalogue()


@pytest.fixture(autouse=True)
def _fresh_routing_caches() -> Iterator[None]:
    from inference.selectors import invalidate_catalogue
    from routing.selectors import invalidate_org_contexts, invalidate_quality_estimates

    invalidate_quality_estimates()
    invalidate_org_contexts()
    yield
    invalidate_quality_estimates()
    invalidate_org_contexts()
    invalidate_catalogue()


def infer(base: str, key: str, body: dict, *, timeout: float = 30):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.post(f"{base}/infer", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=timeout)
