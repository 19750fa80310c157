"""The dashboard's live feed: after the ledger writer commits a batch, one channel-layer message per
organization goes to that organization's group (and nowhere else).

The writer thread only groups the batch and hands it to a publisher thread with its own event loop
(`run_coroutine_threadsafe` returns at once); the Redis round trips of `group_send` happen there, so
a flush never waits for websocket delivery. Without Redis (single process, in-memory layer) nothing
is published: that layer cannot be fed from another thread's loop, and the page polls instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import defaultdict
from concurrent.futures import Future
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

if TYPE_CHECKING:
    from inference.ledger import LedgerRow

logger = logging.getLogger("asahi.live")

# Rows per message: a busy organization's batch can hold hundreds; the page shows the latest ones
# and takes the totals (`count`, `cost_usd`) from the whole batch.
MAX_ROWS = 20
MESSAGE_TYPE = "ledger.flushed"  # the consumer's handler is ledger_flushed()


def group_name(org_id: uuid.UUID | str) -> str:
    return f"dashboard.{uuid.UUID(str(org_id)).hex}"


def row_payload(row: LedgerRow) -> dict[str, Any]:
    """What the dashboard's "latest inferences" table shows (msgpack-safe: no Decimal, datetime)."""
    return {
        "request_id": row.request_id, "created_at": row.created_at.isoformat(),
        "model": row.model, "provider": row.provider, "status": row.status,
        "cache_tier": row.cache_tier, "cost_usd": str(row.cost_usd),
        "baseline_cost_usd": str(row.baseline_cost_usd), "latency_ms": round(row.latency_ms, 1),
        "routing_reason": row.routing_reason[:300], "task_type": row.task_type,
    }


def messages_for(rows: list[LedgerRow]) -> dict[str, dict[str, Any]]:
    """Group name → the one message for that organization's part of a flushed batch."""
    by_org: dict[uuid.UUID, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        by_org[row.organization_id].append(row)
    out = {}
    for org_id, org_rows in by_org.items():
        latest = sorted(org_rows, key=lambda r: r.created_at)[-MAX_ROWS:]
        out[group_name(org_id)] = {
            "type": MESSAGE_TYPE, "count": len(org_rows),
            "cost_usd": str(sum((r.cost_usd for r in org_rows), Decimal(0))),
            "rows": [row_payload(r) for r in latest],
        }
    return out


class Publisher:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.active = True  # the bench turns it off to time a flush without it
        self.sent = 0  # messages handed to the channel layer (for tests and the bench)
        self.failed = 0
        self._pending: set[Future[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.active and not settings.SINGLE_PROCESS

    def on_flushed(self, rows: list[LedgerRow]) -> None:
        """Ledger listener: called by the writer after each flush with the rows it wrote."""
        if not rows or not self.enabled:
            return
        # Publish only what is committed (the writer runs outside any transaction, so this is
        # immediate there; a flush inside an atomic block waits for its commit).
        transaction.on_commit(lambda: self._submit(messages_for(rows)))

    def _submit(self, messages: dict[str, dict[str, Any]]) -> None:
        future = asyncio.run_coroutine_threadsafe(self._send(messages), self._ensure_loop())
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def _send(self, messages: dict[str, dict[str, Any]]) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        for group, message in messages.items():
            try:
                await layer.group_send(group, message)
                self.sent += 1
            except Exception as exc:  # Redis down: the page's polling fallback covers it
                self.failed += 1
                logger.warning("live_feed_publish_failed", extra={"error": type(exc).__name__})

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()
                loop.call_soon(started.set)
                threading.Thread(target=loop.run_forever, name="asahi-live-feed",
                                 daemon=True).start()
                started.wait(5)
                self._loop = loop
            return self._loop

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until what was submitted so far has been sent (tests, the bench)."""
        for future in list(self._pending):
            future.result(timeout)


publisher = Publisher()
