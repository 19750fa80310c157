"""The dashboard's live feed: a ledger flush sends one message per organization, to that
organization's group only, after the rows are committed (real ledger writer, real Redis layer)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from analytics.live import MAX_ROWS, group_name, publisher
from inference.ledger import LedgerRow, ledger
from inference.models import InferenceEvent
from tests.conftest import make_tenant

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def row(org, i: int, cost: str = "0.001") -> LedgerRow:
    return LedgerRow(request_id=f"live-{org.pk.hex[:6]}-{i}", organization_id=org.pk,
                     api_key_id=None, endpoint="chat", model="gpt-4o-mini", provider="openai",
                     routing_reason="cheapest model meeting quality", cost_usd=Decimal(cost),
                     latency_ms=12.5)


async def _listen(groups: list[str]) -> tuple[object, dict[str, str]]:
    layer = get_channel_layer()
    channels = {}
    for g in groups:
        channels[g] = await layer.new_channel()
        await layer.group_add(g, channels[g])
    return layer, channels


async def _receive_all(layer, channel: str, wait: float = 0.5) -> list[dict]:
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(layer.receive(channel), wait))
        except TimeoutError:
            return got


def test_one_message_per_flush_per_organization_to_its_own_group_only() -> None:
    a, b, c = make_tenant("live-a"), make_tenant("live-b"), make_tenant("live-quiet")
    groups = [group_name(t.org.pk) for t in (a, b, c)]

    async def scenario() -> dict[str, list[dict]]:
        layer, channels = await _listen(groups)
        await asyncio.to_thread(_flush, a, b)
        return {g: await _receive_all(layer, channels[g]) for g in groups}

    got = async_to_sync(scenario)()
    msg_a, msg_b, msg_c = got[groups[0]], got[groups[1]], got[groups[2]]
    assert len(msg_a) == 1 and len(msg_b) == 1 and msg_c == []
    assert msg_a[0]["count"] == 30 and Decimal(msg_a[0]["cost_usd"]) == Decimal("0.030")
    assert len(msg_a[0]["rows"]) == MAX_ROWS  # the latest rows, oldest first
    assert msg_a[0]["rows"][-1]["request_id"] == f"live-{a.org.pk.hex[:6]}-29"
    assert {r["request_id"] for r in msg_b[0]["rows"]} == {
        f"live-{b.org.pk.hex[:6]}-{i}" for i in range(3)}
    assert msg_b[0]["rows"][0]["routing_reason"] == "cheapest model meeting quality"
    # Sent after the commit: every row a message names is already readable.
    assert InferenceEvent.objects.filter(request_id=msg_a[0]["rows"][-1]["request_id"]).exists()


def _flush(a, b) -> None:
    for i in range(30):
        ledger.append(row(a.org, i))
    for i in range(3):
        ledger.append(row(b.org, i))
    ledger.flush()
    publisher.drain()


def test_a_failing_listener_does_not_cost_the_rows() -> None:
    t = make_tenant("live-listener")

    def broken(rows: list[LedgerRow]) -> None:
        raise RuntimeError("listener bug")

    ledger.add_listener(broken)
    try:
        ledger.append(row(t.org, 0))
        assert ledger.flush() == 1
    finally:
        ledger._listeners.remove(broken)
    assert InferenceEvent.objects.filter(organization_id=t.org.pk).count() == 1
