"""``manage.py fake_upstream``: run the fake LLM upstream in the foreground."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from inference.fake_upstream import run_forever


class Command(BaseCommand):
    help = "Serve the fake OpenAI/Anthropic/Cohere upstream (no internet needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--fail-rate", type=float, default=0.0)
        parser.add_argument("--batch-delay-s", type=float, default=0.0,
                            help="seconds until a provider batch reports completion")

    def handle(self, *args: Any, **options: Any) -> None:
        run_forever(
            host=options["host"],
            port=options["port"],
            latency_ms=options["latency_ms"],
            fail_rate=options["fail_rate"],
            batch_delay_s=options["batch_delay_s"],
        )
