"""Pytest fixture for the fake LLM upstream (the only stand-in the test-suite uses).

Use it from a conftest or test module with ``from tests.fakeup import fake_upstream``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference.fake_upstream import FakeUpstream, start_fake_upstream


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    """One fake upstream per test session (per xdist worker), on a free port, 0 ms latency."""
    # A short stall for injected timeouts so abandoned handlers do not pile up.
    server = start_fake_upstream(timeout_sleep_s=5.0, seed=1234)
    try:
        yield server
    finally:
        server.stop()
