"""``manage.py eval_semantic_cache``: precision/recall of the shipped semantic-cache decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from caching.semantic.data import DEFAULT_QQP_PATH


class Command(BaseCommand):
    help = "Run the semantic cache decision procedure over labelled pairs (QQP CSV or MRPC TSV)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pairs", type=Path, default=DEFAULT_QQP_PATH)
        parser.add_argument("--format", choices=["qqp", "mrpc"], default="qqp")
        parser.add_argument(
            "--split",
            choices=["heldout", "tune", "all"],
            default=None,
            help="default: heldout (the part training never saw)",
        )
        parser.add_argument("--task-type", default="default")
        parser.add_argument(
            "--mrpc",
            type=Path,
            default=None,
            help="also score this MRPC TSV's split; the goal line then includes MRPC precision",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from caching.semantic.evaluation import report

        lines = report(
            pairs_path=options["pairs"],
            fmt=options["format"],
            split=options["split"],
            task_type=options["task_type"],
            mrpc_path=options["mrpc"],
        )
        for line in lines:
            self.stdout.write(line)
