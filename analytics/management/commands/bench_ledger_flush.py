"""Time the ledger writer's flush with and without the dashboard's live feed.

Each round appends `--batch` rows spread over `--orgs` organizations and flushes once, as the writer
thread does; the live feed adds one group_send per organization per flush, handed to its own thread.
Rows are tagged `bench-flush-` (the ledger is append-only: they stay).
"""

from __future__ import annotations

import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Time ledger flushes with the live feed off and on."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rounds", type=int, default=200)
        parser.add_argument("--batch", type=int, default=100)
        parser.add_argument("--orgs", type=int, default=5)

    def handle(self, *args: Any, **o: Any) -> None:
        from analytics.live import publisher
        from governance.services import organization_create
        from inference.ledger import LedgerRow, ledger

        tag = uuid.uuid4().hex[:6]
        orgs = [organization_create(name=f"bench-flush-{tag}-{i}", actor="bench").pk
                for i in range(o["orgs"])]
        out = self.stdout.write
        out(f"{o['rounds']} flushes of {o['batch']} rows over {o['orgs']} organizations")
        out(f"{'live feed':10} {'p50 ms':>8} {'p95 ms':>8} {'rows/s':>10} {'messages':>9}")
        seq = 0
        for active in (False, True, False, True):  # interleaved: drift hits both alike
            publisher.active = active
            sent0 = publisher.sent
            times = []
            for _ in range(o["rounds"]):
                for _ in range(o["batch"]):
                    seq += 1
                    ledger.append(LedgerRow(
                        request_id=f"bench-flush-{tag}-{seq}", organization_id=orgs[seq % len(orgs)],
                        api_key_id=None, endpoint="chat", model="gpt-4o-mini", provider="openai",
                        routing_reason="bench", cost_usd=Decimal("0.000123"), latency_ms=42.0))
                t0 = time.perf_counter()
                ledger.flush()
                times.append((time.perf_counter() - t0) * 1000)
            publisher.drain(timeout=30)
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            rate = o["batch"] * len(times) / (sum(times) / 1000)
            out(f"{'on' if active else 'off':10} {statistics.median(times):8.2f} {p95:8.2f} "
                f"{rate:10,.0f} {publisher.sent - sent0:9}")
        publisher.active = True
