"""``manage.py bench_batch --url http://127.0.0.1:8000 [--key ask_...] [--n 10000]``: the 10,000-line
batch through the openai SDK against a running Asahi (./asahi up), with the money checks."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run an N-line batch through the openai SDK against a running server and check costs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--key", default="", help="an API key with the infer scope; "
                            "default: a new organization 'bench-batch-<time>' and key")
        parser.add_argument("--n", type=int, default=10_000)
        parser.add_argument("--cached", type=int, default=500,
                            help="prompts answered synchronously first (cache hits in the batch)")
        parser.add_argument("--poll", type=float, default=2.0)
        parser.add_argument("--timeout", type=float, default=3600.0)

    def handle(self, *args: Any, **options: Any) -> None:
        import logging

        from batching.bench import run

        for name in ("httpx", "httpx2", "openai"):  # one line per poll would bury the report
            logging.getLogger(name).setLevel(logging.WARNING)

        key = options["key"]
        if not key:
            from governance.services import api_key_issue, organization_create

            org = organization_create(name=f"bench-batch-{int(time.time())}", actor="bench_batch")
            key = api_key_issue(organization=org, actor="bench_batch", scopes=["infer"]).raw
        report = run(url=options["url"], key=key, n=options["n"], cached=options["cached"],
                     poll_s=options["poll"], timeout_s=options["timeout"])
        self.stdout.write(report.text())
