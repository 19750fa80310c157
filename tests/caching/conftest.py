"""Fixtures of the cache tests: the live gateway from the inference tests, and a URLconf with the
cache management API (the lead includes `caching.urls` in the project URLconf)."""

from tests.fakeup import fake_upstream  # noqa: F401  (fixture)
from tests.inference.conftest import (  # noqa: F401  (fixtures)
    asahi_url,
    gateway,
    live_tenant,
    upstream_env,
)
