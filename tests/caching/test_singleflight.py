"""Single flight on a real Redis: one leader per (organization, digest), bounded waits."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from caching import keys
from caching.singleflight import join, single_flight

pytestmark = [pytest.mark.redis]


def test_concurrent_misses_in_one_process_elect_one_leader() -> None:
    org, digest = uuid.uuid4(), uuid.uuid4().hex
    calls = 0
    order: list[str] = []

    async def request(i: int) -> bool:
        nonlocal calls
        async with single_flight(org, digest, wait_seconds=5) as leader:
            if leader:
                calls += 1
                await asyncio.sleep(0.2)  # the upstream call
                order.append("leader-done")
            else:
                order.append("follower")
            return leader

    async def main() -> list[bool]:
        return await asyncio.gather(*(request(i) for i in range(10)))

    leaders = asyncio.run(main())
    assert calls == 1 and leaders.count(True) == 1
    # Followers only proceed after the leader finished (then they read the leader's answer).
    assert order[0] == "leader-done" and order[1:] == ["follower"] * 9


def test_lock_is_released_and_next_miss_leads_again(redis_client) -> None:
    org, digest = uuid.uuid4(), uuid.uuid4().hex

    async def main() -> tuple[bool, bool, int]:
        async with single_flight(org, digest, wait_seconds=5) as first:
            held = redis_client.exists(keys.singleflight_key(org, digest))
        async with single_flight(org, digest, wait_seconds=5) as second:
            pass
        return first, second, held

    first, second, held = asyncio.run(main())
    assert first and second and held == 1
    assert redis_client.exists(keys.singleflight_key(org, digest)) == 0


def test_followers_in_another_process_wait_for_the_redis_lock() -> None:
    """A second event loop in another thread has its own in-process map, like another process:
    it must see the leader through Redis and wait until the leader releases."""
    org, digest = uuid.uuid4(), uuid.uuid4().hex
    leader_in = threading.Event()
    released_at: list[float] = []
    follower_result: dict[str, object] = {}

    async def leader() -> None:
        async with single_flight(org, digest, wait_seconds=5) as is_leader:
            assert is_leader
            leader_in.set()
            await asyncio.sleep(0.3)
            released_at.append(asyncio.get_running_loop().time())

    async def follower() -> None:
        loop = asyncio.get_running_loop()
        flight = await join(org, digest, wait_seconds=5)
        follower_result.update(leader=flight.leader, timed_out=flight.timed_out,
                               waited_ms=flight.waited_ms, at=loop.time())

    t = threading.Thread(target=lambda: asyncio.run(leader()))
    t.start()
    assert leader_in.wait(5)
    asyncio.run(follower())
    t.join()
    assert follower_result["leader"] is False and follower_result["timed_out"] is False
    assert float(follower_result["waited_ms"]) >= 150  # waited for most of the leader's 300 ms


def test_wait_is_bounded_when_the_leader_never_finishes(redis_client) -> None:
    org, digest = uuid.uuid4(), uuid.uuid4().hex
    # A leader elsewhere that died holding the lock (it expires only after its PX).
    redis_client.set(keys.singleflight_key(org, digest), "someone-else", px=10_000)

    async def main():  # type: ignore[no-untyped-def]
        return await join(org, digest, wait_seconds=0.3)

    flight = asyncio.run(main())
    assert flight.leader is False and flight.timed_out is True
    assert 250 <= flight.waited_ms < 2_000
    redis_client.delete(keys.singleflight_key(org, digest))


def test_different_organizations_do_not_share_a_flight() -> None:
    digest = uuid.uuid4().hex

    async def main() -> list[bool]:
        async def one(org: uuid.UUID) -> bool:
            async with single_flight(org, digest, wait_seconds=2) as leader:
                await asyncio.sleep(0.05)
                return leader

        return await asyncio.gather(one(uuid.uuid4()), one(uuid.uuid4()))

    assert asyncio.run(main()) == [True, True]
