"""The dashboard's websocket: the session's user joins their own organization's group, nothing else.

The organization comes from the user's membership (never from the URL or a message), so a socket can
only ever receive the rows of the organization the pages show. Messages are what
`analytics.live` publishes after each ledger flush.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from analytics.live import group_name
from console.access import membership_for

# Close codes in the application range (4000-4999), so the page can tell "log in again" from a drop.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        membership = await database_sync_to_async(membership_for)(user)
        if membership is None:  # viewer and up may watch; no membership, no organization
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.group = group_name(membership.organization_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def _refuse(self, code: int) -> None:
        # Accepted, then closed with an application code: a handshake refusal reaches the page
        # only as 1006, which it cannot tell from a network drop (and would retry forever).
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The feed is one-way; anything the page sends is ignored."""

    async def ledger_flushed(self, event: dict[str, Any]) -> None:
        await self.send_json({"count": event["count"], "cost_usd": event["cost_usd"],
                              "rows": event["rows"]})
