"""A malformed configuration value stops start-up with the variable's name (asahi_project.env)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ASAHI_EMBED_INT8", "maybe", "ASAHI_EMBED_INT8='maybe' is not a boolean"),
    ("ASAHI_EMBED_THREADS", "two", "ASAHI_EMBED_THREADS='two' is not an integer"),
    ("ASAHI_SEMANTIC_EMBEDDER", "voyage", "ASAHI_SEMANTIC_EMBEDDER must be local"),
])
def test_bad_embedder_settings_stop_start_up(name: str, value: str, message: str) -> None:
    env = {**os.environ, name: value}
    run = subprocess.run([sys.executable, "-c", "import asahi_project.settings"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "ConfigError" in run.stderr and message in run.stderr


def test_the_embedder_settings_accept_their_documented_values() -> None:
    env = {**os.environ, "ASAHI_EMBED_INT8": "false", "ASAHI_EMBED_THREADS": "2",
           "ASAHI_SEMANTIC_EMBEDDER": "openai:text-embedding-3-small"}
    run = subprocess.run([sys.executable, "-c", "import asahi_project.settings"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
