"""Load the local embedder once so that its ONNX export exists before the first request.

The first load exports the adapter-merged model to ONNX (~10 s); without this, the first
semantic lookups of a new deployment run past their 0.5 s budget and are skipped.

    python manage.py warm_embedder
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Load (and on first use export) the local embedder of the semantic cache."

    def handle(self, *args: Any, **opts: Any) -> None:
        from caching.semantic.embedders import get_local_embedder, model_cache_dir

        started = time.monotonic()
        embedder = get_local_embedder()
        embedder.embed(["warm up"])
        self.stdout.write(
            f"embedder {embedder.name}:{embedder.version} ({embedder.runtime}) ready in "
            f"{time.monotonic() - started:.1f}s; model cache {model_cache_dir()}"
        )
