"""Properties of the budget reservation scripts (admit/settle/release Lua) against real Redis.

Arbitrary sequences of admit, settle and release with random amounts on one org's daily budget:
spent equals the sum of settled amounts, reservations never go negative, a denied admit changes
nothing, and once every hold is settled or released nothing stays reserved.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis as sync_redis
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.limits import BudgetLimit, Limits
from tests.governance.test_limits import TEST_DB, _client, _redis_url

pytestmark = pytest.mark.redis

amount = st.integers(0, 5_000)
step = st.one_of(
    st.tuples(st.just("admit"), amount),
    st.tuples(st.just("settle"), st.integers(0, 30), amount),
    st.tuples(st.just("release"), st.integers(0, 30)),
)


@settings(max_examples=80, deadline=None)
@given(limit=st.none() | st.integers(0, 20_000), steps=st.lists(step, max_size=25))
def test_spent_and_reserved_follow_every_sequence(limit: int | None,
                                                  steps: list[tuple[Any, ...]]) -> None:
    org = str(uuid.uuid4())
    budget = BudgetLimit("org", org, "day", limit)

    async def main() -> None:
        client = _client()
        limits = Limits(client)
        open_holds: dict[str, int] = {}
        finished: list[str] = []
        settled_total = 0

        async def state() -> tuple[int, int]:
            (s,) = await limits.get_spend(org_id=org, budgets=[budget])
            assert s.reserved_nanousd >= 0 and s.spent_nanousd >= 0
            return s.spent_nanousd, s.reserved_nanousd

        try:
            for op in steps:
                before = await state()
                if op[0] == "admit":
                    got = await limits.admit(org_id=org, cost_nanousd=op[1], budgets=[budget])
                    if got.ok:
                        assert got.reservation_id is not None
                        open_holds[got.reservation_id] = op[1]
                    else:
                        assert await state() == before, "a denied admit changed the budget"
                        continue
                else:
                    ids = list(open_holds) + finished
                    if not ids:
                        continue
                    rid = ids[op[1] % len(ids)]
                    if op[0] == "settle":
                        result = await limits.settle(reservation_id=rid, actual_nanousd=op[2])
                        if rid in open_holds:
                            assert result.outcome == "settled"
                            settled_total += op[2]
                    else:
                        await limits.release(reservation_id=rid)
                    if rid in open_holds:
                        del open_holds[rid]
                        finished.append(rid)
                spent, reserved = await state()
                assert spent == settled_total
                assert reserved == sum(open_holds.values())
            for rid in list(open_holds):
                await limits.release(reservation_id=rid)
            assert await state() == (settled_total, 0)
        finally:
            await client.aclose()

    asyncio.run(main())
    client = sync_redis.Redis.from_url(_redis_url())
    client.connection_pool.connection_kwargs["db"] = TEST_DB
    for key in client.scan_iter(match=f"asahi:*{org}*", count=1000):
        client.delete(key)
    client.close()
