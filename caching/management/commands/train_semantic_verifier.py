"""``manage.py train_semantic_verifier``: rebuild the semantic cache's adapter and verifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from caching.semantic.data import DEFAULT_QQP_PATH


class Command(BaseCommand):
    help = "Train the embedder adapter + verifier on the tune split and write caching/artifacts/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pairs", type=Path, default=DEFAULT_QQP_PATH)
        parser.add_argument("--format", choices=["qqp", "mrpc"], default="qqp")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--out", type=Path, default=None, help="default: caching/artifacts")
        parser.add_argument("--reuse-adapter", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from caching.semantic.training import main

        argv = ["--pairs", str(options["pairs"]), "--format", options["format"]]
        argv += ["--seed", str(options["seed"])]
        if options["epochs"] is not None:
            argv += ["--epochs", str(options["epochs"])]
        if options["out"] is not None:
            argv += ["--out", str(options["out"])]
        if options["reuse_adapter"]:
            argv.append("--reuse-adapter")
        main(argv)
