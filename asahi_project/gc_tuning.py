"""Keep the garbage collector's full passes off the request path.

A web process holds a few hundred thousand long-lived objects after start-up (modules, Django's
and the SDKs' classes, the URLconf, pydantic models). Every full (generation 2) collection walks
all of them: under load that was 100-900 ms with the event loop stopped, the largest stalls in
the miss path's p99.9 (docs/benchmarks.md). Importing what the first requests would import, then
``gc.freeze()``, moves those objects to a permanent generation that collections skip; objects made
later are collected as usual, and a full pass then only walks what the process made since.
"""

from __future__ import annotations

import gc
import importlib
import logging

logger = logging.getLogger("asahi.gc")

# Imported lazily by the first requests otherwise (the SDKs load their resource modules on first
# use); loaded before the freeze so that their objects are frozen too.
WARM_MODULES = (
    "inference.pipeline",
    "inference.api",
    "caching.bridge",
    "openai.resources.chat.completions",
    "openai.resources.embeddings",
    "anthropic.resources.messages",
    "cohere",
)


def freeze_after_startup() -> int:
    """Import the hot modules, collect once, freeze; returns how many objects were frozen."""
    from django.urls import get_resolver

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional SDK that is not installed
            logger.debug("gc_warm_import_skipped", extra={"module": name})
    get_resolver().url_patterns  # noqa: B018 - imports every view module
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    return gc.get_freeze_count()
