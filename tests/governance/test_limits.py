"""Redis limits layer: budgets, rate limits, combined admission, circuit breaker, outages.

Redis tests use db 14 (ASAHI_LIMITS_TEST_REDIS_URL overrides the server); each test works on a fresh
org id and deletes only its own keys, so runs may overlap (pytest-xdist, concurrent sessions).
Async code is driven with asyncio.run so no async pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import redis as sync_redis
from redis.crc import key_slot

from governance.limits import (
    Admission,
    BudgetLimit,
    CircuitBreaker,
    Limits,
    LimitsUnavailable,
    RateLimit,
    limits_client,
    period_bucket,
    request_limits,
    usd_to_nano,
)
from governance.limits.keys import budget_key, rate_key, reservation_keys
from governance.types import AuthContext, PolicySnapshot

T = TypeVar("T")
TEST_DB = 14


def _redis_url() -> str:
    explicit = os.environ.get("ASAHI_LIMITS_TEST_REDIS_URL")
    if explicit:
        return explicit
    try:
        from django.conf import settings

        configured = getattr(settings, "REDIS_URL", None)
    except Exception:  # Django not configured (-p no:django)
        configured = None
    return configured or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379"


def _client(url: str | None = None, **kwargs: Any):  # type: ignore[no-untyped-def]
    client = limits_client(url=url or _redis_url(), **kwargs)
    client.connection_pool.connection_kwargs["db"] = TEST_DB  # never touch other dbs
    return client


def run(factory: Callable[[Any], Awaitable[T]], **client_kwargs: Any) -> T:
    """Run ``factory(client)`` on a fresh client in a fresh event loop."""

    async def main() -> T:
        client = _client(**client_kwargs)
        try:
            return await factory(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def rid(admission: Admission) -> str:
    assert admission.ok and admission.reservation_id is not None
    return admission.reservation_id


@pytest.fixture
def org() -> Iterator[str]:
    """A fresh organization id per test: tests never share keys, so they are safe under
    pytest-xdist and concurrent runs; afterwards only this test's keys are deleted."""
    client = sync_redis.Redis.from_url(_redis_url())
    client.connection_pool.connection_kwargs["db"] = TEST_DB
    try:
        client.ping()
    except sync_redis.exceptions.ConnectionError:
        pytest.skip("no Redis server for the limits tests")
    org_id = str(uuid.uuid4())
    yield org_id
    for key in client.scan_iter(match=f"asahi:*{org_id}*", count=1000):
        client.delete(key)
    client.close()


ORG = "3f1c2a9e-0000-4000-8000-000000000001"


def org_day(org: str, limit: int | None) -> BudgetLimit:
    return BudgetLimit("org", org, "day", limit)


def key_day(limit: int | None, key: str = "11") -> BudgetLimit:
    return BudgetLimit("key", key, "day", limit)


# ---------------------------------------------------------------- pure logic (no Redis)


def test_period_buckets_are_utc_days_and_months_with_rollover() -> None:
    now = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    day = period_bucket(period="day", now=now)
    month = period_bucket(period="month", now=now)
    assert day.label == "d:20261231"
    assert day.ends_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert month.label == "m:202612"
    assert month.ends_at == datetime(2027, 1, 1, tzinfo=UTC)
    # Buckets expire after their period ends, never before.
    assert day.expire_at > day.ends_at.timestamp()
    assert month.expire_at > month.ends_at.timestamp()


def test_all_keys_of_an_org_share_one_cluster_slot() -> None:
    bucket = period_bucket(period="day", now=datetime(2026, 11, 23, tzinfo=UTC))
    names = [
        budget_key(org_id=ORG, budget=org_day(ORG, 1), bucket=bucket),
        budget_key(org_id=ORG, budget=key_day(1), bucket=bucket),
        rate_key(org_id=ORG, rate=RateLimit("key", "11", "tpm", 5)),
        rate_key(org_id=ORG, rate=RateLimit("org", ORG, "rpm", 5)),
        *reservation_keys(org_id=ORG),
    ]
    assert f"asahi:b:{{{ORG}}}:d:20261123" in names
    assert len({key_slot(n.encode()) for n in names}) == 1


def test_usd_to_nano_rounds_up() -> None:
    assert usd_to_nano("0.000000001") == 1
    assert usd_to_nano("0.0000000011") == 2
    assert usd_to_nano(1.5) == 1_500_000_000


def test_request_limits_from_auth_context() -> None:
    auth = AuthContext(
        key_id=42,
        key_prefix="ak_x",
        org_id=uuid.UUID(ORG),
        org_name="acme",
        scopes=frozenset(),
        expires_at=None,
        frozen=False,
        key_daily_budget_usd=Decimal("0.5"),
        key_monthly_budget_usd=None,
        key_rpm_limit=30,
        key_tpm_limit=None,
        key_allowed_models=frozenset(),
        policy=PolicySnapshot(
            monthly_budget_usd=Decimal("100"), tpm_limit=90_000, redis_failure_mode="open"
        ),
    )
    got = request_limits(auth=auth)
    assert got.org_id == ORG and got.fail_open
    assert got.budgets == (
        BudgetLimit("key", "42", "day", 500_000_000),
        BudgetLimit("key", "42", "month", None),
        BudgetLimit("org", ORG, "day", None),
        BudgetLimit("org", ORG, "month", 100 * 10**9),
    )
    assert got.rate_limits == (
        RateLimit("key", "42", "rpm", 30),
        RateLimit("org", ORG, "tpm", 90_000),
    )


def test_org_budget_must_belong_to_the_org() -> None:
    with pytest.raises(ValueError):
        run(
            lambda r: Limits(r).admit(
                org_id=ORG, cost_nanousd=1, budgets=[BudgetLimit("org", "other", "day", 5)]
            )
        )


# ---------------------------------------------------------------- budgets


@pytest.mark.redis
def test_reserve_settle_release_arithmetic(org: str) -> None:
    budgets = [org_day(org, 10_000), key_day(5_000), BudgetLimit("key", "11", "month", None)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        a = await lim.admit(org_id=org, cost_nanousd=300, budgets=budgets)
        b = await lim.admit(org_id=org, cost_nanousd=200, budgets=budgets)
        held = await lim.get_spend(org_id=org, budgets=budgets)
        s1 = await lim.settle(reservation_id=rid(a), actual_nanousd=120)
        # Actual above the reservation is recorded in full: the money was spent.
        s2 = await lim.settle(reservation_id=rid(b), actual_nanousd=260)
        c = await lim.admit(org_id=org, cost_nanousd=999, budgets=budgets)
        s3 = await lim.release(reservation_id=rid(c))
        after = await lim.get_spend(org_id=org, budgets=budgets)
        return held, (s1, s2, s3), after

    held, outcomes, after = run(scenario)
    assert [(s.spent_nanousd, s.reserved_nanousd) for s in held] == [(0, 500)] * 3
    assert [o.outcome for o in outcomes] == ["settled", "settled", "released"]
    assert [o.reserved_nanousd for o in outcomes] == [300, 200, 999]
    assert [(s.spent_nanousd, s.reserved_nanousd) for s in after] == [(380, 0)] * 3
    assert after[0].remaining_nanousd == 10_000 - 380
    assert after[2].remaining_nanousd is None


@pytest.mark.redis
def test_settle_and_release_are_idempotent(org: str) -> None:
    budgets = [org_day(org, 1_000)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        a = await lim.admit(org_id=org, cost_nanousd=400, budgets=budgets)
        first = await lim.settle(reservation_id=rid(a), actual_nanousd=350)
        again = await asyncio.gather(
            *[lim.settle(reservation_id=rid(a), actual_nanousd=350) for _ in range(5)],
            lim.release(reservation_id=rid(a)),
        )
        b = await lim.admit(org_id=org, cost_nanousd=100, budgets=budgets)
        released = await lim.release(reservation_id=rid(b))
        settle_after_release = await lim.settle(reservation_id=rid(b), actual_nanousd=90)
        unknown = await lim.settle(reservation_id=f"{org}:nope", actual_nanousd=5)
        spend = await lim.get_spend(org_id=org, budgets=budgets)
        return first, again, released, settle_after_release, unknown, spend

    first, again, released, late, unknown, spend = run(scenario)
    assert first.outcome == "settled" and first.changed
    assert {o.outcome for o in again} == {"already_settled"}
    assert not any(o.changed for o in again)
    assert released.outcome == "released"
    assert late.outcome == "already_released"
    assert unknown.outcome == "unknown"
    assert (spend[0].spent_nanousd, spend[0].reserved_nanousd) == (350, 0)


@pytest.mark.redis
def test_parts_settle_their_share_once_and_release_drops_the_rest(org: str) -> None:
    """A batch reservation settled item by item: each part leaves the hold and is charged once,
    however often it is repeated; the final release frees only what no part used."""
    budgets = [org_day(org, 10_000), key_day(None)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        batch = await lim.admit(org_id=org, cost_nanousd=3_000, budgets=budgets, ttl_s=60)
        first = await lim.settle_parts(reservation_id=rid(batch),
                                       parts=[("1", 1_000, 400), ("2", 1_000, 0)])
        mid = await lim.get_spend(org_id=org, budgets=budgets)
        # A worker that died after the call redoes the chunk, with one new part in it.
        redo = await lim.settle_parts(reservation_id=rid(batch),
                                      parts=[("1", 1_000, 400), ("2", 1_000, 0), ("3", 1_000, 700)])
        again = await lim.settle_parts(reservation_id=rid(batch), parts=[("3", 1_000, 700)])
        released = await lim.release(reservation_id=rid(batch))
        after_close = await lim.settle_parts(reservation_id=rid(batch), parts=[("4", 5, 5)])
        unknown = await lim.settle_parts(reservation_id=f"{org}:nope", parts=[("1", 1, 1)])
        end = await lim.get_spend(org_id=org, budgets=budgets)
        return first, mid, redo, again, released, after_close, unknown, end

    first, mid, redo, again, released, closed, unknown, end = run(scenario)
    assert (first.outcome, first.settled, first.held_nanousd) == ("held", 2, 1_000)
    assert [(s.spent_nanousd, s.reserved_nanousd) for s in mid] == [(400, 1_000)] * 2
    assert (redo.settled, redo.held_nanousd) == (1, 0)
    assert (again.settled, again.held_nanousd) == (0, 0)
    assert released.outcome == "released" and released.reserved_nanousd == 0
    assert closed.outcome == "closed" and closed.settled == 0
    assert unknown.outcome == "unknown"
    assert [(s.spent_nanousd, s.reserved_nanousd) for s in end] == [(1_100, 0)] * 2


@pytest.mark.redis
def test_parts_of_an_expired_reservation_still_count_their_spend(org: str) -> None:
    budgets = [org_day(org, 10_000)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        batch = await lim.admit(org_id=org, cost_nanousd=2_000, budgets=budgets, ttl_s=0.2)
        await asyncio.sleep(0.3)
        await lim.admit(org_id=org, cost_nanousd=1, budgets=budgets)  # sweeps the expired hold
        late = await lim.settle_parts(reservation_id=rid(batch), parts=[("a", 1_000, 300)])
        return late, await lim.get_spend(org_id=org, budgets=budgets)

    late, spend = run(scenario)
    assert (late.outcome, late.settled) == ("expired", 1)
    assert (spend[0].spent_nanousd, spend[0].reserved_nanousd) == (300, 1)


@pytest.mark.redis
def test_budget_denial_is_all_or_nothing_and_reports_the_budget(org: str) -> None:
    budgets = [org_day(org, 10_000), key_day(1_000)]
    rates = [RateLimit("key", "11", "rpm", 2)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        ok = await lim.admit(org_id=org, cost_nanousd=700, budgets=budgets, rate_limits=rates)
        denied = await lim.admit(org_id=org, cost_nanousd=400, budgets=budgets, rate_limits=rates)
        spend = await lim.get_spend(org_id=org, budgets=budgets)
        # The denied request consumed no rpm: exactly one more request fits (limit 2).
        fits = await lim.admit(org_id=org, cost_nanousd=300, budgets=budgets, rate_limits=rates)
        over = await lim.admit(org_id=org, cost_nanousd=0, budgets=budgets, rate_limits=rates)
        return ok, denied, spend, fits, over

    ok, denied, spend, fits, over = run(scenario)
    assert ok.ok and ok.reservation_id
    assert not denied.ok and denied.reservation_id is None
    assert denied.denied_by == "budget:key:day"
    assert denied.budget is not None
    assert denied.budget.budget.limit_nanousd == 1_000
    assert (denied.budget.spent_nanousd, denied.budget.reserved_nanousd) == (0, 700)
    assert denied.retry_after is not None and 0 < denied.retry_after <= 86_400
    # Nothing reserved on the org budget either.
    assert [s.reserved_nanousd for s in spend] == [700, 700]
    assert fits.ok  # 700 + 300 == 1000 is within the limit (limit is inclusive)
    assert not over.ok and over.denied_by == "rpm:key"


@pytest.mark.redis
def test_unlimited_budget_tracks_spend_but_never_denies(org: str) -> None:
    budgets = [BudgetLimit("org", org, "month", None), BudgetLimit("key", "11", "month", 0)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        big = await lim.admit(org_id=org, cost_nanousd=10**15, budgets=budgets[:1])
        zero_limit = await lim.admit(org_id=org, cost_nanousd=1, budgets=budgets)
        free = await lim.admit(org_id=org, cost_nanousd=0, budgets=budgets)
        await lim.settle(reservation_id=rid(big), actual_nanousd=10**15 + 7)
        return big, zero_limit, free, await lim.get_spend(org_id=org, budgets=budgets)

    big, zero_limit, free, spend = run(scenario)
    assert big.ok
    assert not zero_limit.ok and zero_limit.denied_by == "budget:key:month"
    assert free.ok  # a zero-cost request fits a zero budget
    assert spend[0].spent_nanousd == 10**15 + 7  # exact integer arithmetic past 2^53/1e9 USD
    assert spend[1].spent_nanousd == 0


@pytest.mark.redis
def test_expired_reservation_is_released_and_a_late_settle_still_counts(org: str) -> None:
    budgets = [org_day(org, 1_000)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        crashed = await lim.admit(org_id=org, cost_nanousd=800, budgets=budgets, ttl_s=0.2)
        blocked = await lim.admit(org_id=org, cost_nanousd=800, budgets=budgets)
        await asyncio.sleep(0.3)
        spend_after_expiry = await lim.get_spend(org_id=org, budgets=budgets)
        late = await lim.settle(reservation_id=rid(crashed), actual_nanousd=150)
        late_again = await lim.settle(reservation_id=rid(crashed), actual_nanousd=150)
        spend_after_late = await lim.get_spend(org_id=org, budgets=budgets)
        return blocked, spend_after_expiry, late, late_again, spend_after_late

    blocked, expired, late, late_again, final = run(scenario)
    assert not blocked.ok
    assert (expired[0].spent_nanousd, expired[0].reserved_nanousd) == (0, 0)
    assert late.outcome == "late_settled"
    assert late_again.outcome == "already_settled"
    assert (final[0].spent_nanousd, final[0].reserved_nanousd) == (150, 0)


@pytest.mark.redis
def test_budget_keys_expire_after_their_period(org: str) -> None:
    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        now = datetime.now(UTC)
        await lim.admit(org_id=org, cost_nanousd=5, budgets=[org_day(org, 100)], now=now)
        bucket = period_bucket(period="day", now=now)
        key = budget_key(org_id=org, budget=org_day(org, 100), bucket=bucket)
        index = [await r.expiretime(k) for k in reservation_keys(org_id=org)]
        return bucket, await r.expiretime(key), index

    bucket, expire, index = run(scenario)
    assert expire == bucket.expire_at
    assert expire > bucket.ends_at.timestamp()
    # The reservation index lives as long as the buckets whose holds it may have to release.
    assert all(t >= bucket.expire_at - 1 for t in index)


# ---------------------------------------------------------------- rate limits


@pytest.mark.redis
def test_rpm_retry_after_is_the_time_until_a_slot_frees(org: str) -> None:
    rates = [RateLimit("key", "11", "rpm", 3)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        results = [await lim.admit(org_id=org, cost_nanousd=0, rate_limits=rates) for _ in range(4)]
        return results

    results = run(scenario)
    assert [a.ok for a in results] == [True, True, True, False]
    denied = results[-1]
    assert denied.denied_by == "rpm:key"
    # 3/min refills one request every 20 s; the burst took a few ms.
    assert denied.retry_after is not None and 19.5 < denied.retry_after <= 20.0


@pytest.mark.redis
def test_tpm_retry_after_is_precise(org: str) -> None:
    # 6000 tokens/min = 100 tokens/s; after draining, 50 tokens take 0.5 s.
    rates = [RateLimit("org", org, "tpm", 6000)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        drain = await lim.admit(org_id=org, cost_nanousd=0, tokens=6000, rate_limits=rates)
        denied = await lim.admit(org_id=org, cost_nanousd=0, tokens=50, rate_limits=rates)
        assert denied.retry_after is not None
        await asyncio.sleep(denied.retry_after / 2)  # half way: still short of tokens
        early = await lim.admit(org_id=org, cost_nanousd=0, tokens=50, rate_limits=rates)
        await asyncio.sleep(denied.retry_after / 2 + 0.05)
        on_time = await lim.admit(org_id=org, cost_nanousd=0, tokens=50, rate_limits=rates)
        return drain, denied, early, on_time

    drain, denied, early, on_time = run(scenario)
    assert drain.ok
    assert not denied.ok and denied.denied_by == "tpm:org"
    assert 0.45 < denied.retry_after <= 0.5  # type: ignore[operator]
    assert not early.ok
    assert on_time.ok


@pytest.mark.redis
def test_rate_denial_consumes_nothing_from_other_limits(org: str) -> None:
    key_rpm = RateLimit("key", "11", "rpm", 10)
    org_rpm = RateLimit("org", org, "rpm", 1)

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        both = [key_rpm, org_rpm]
        first = await lim.admit(org_id=org, cost_nanousd=0, rate_limits=both)
        denied = [await lim.admit(org_id=org, cost_nanousd=0, rate_limits=both) for _ in range(3)]
        # Key limit alone: 10 - 1 (first) = 9 left; the 3 denied requests took none.
        rest = [
            await lim.admit(org_id=org, cost_nanousd=0, rate_limits=[key_rpm]) for _ in range(10)
        ]
        return first, denied, rest

    first, denied, rest = run(scenario)
    assert first.ok
    assert all(not d.ok and d.denied_by == "rpm:org" for d in denied)
    assert [a.ok for a in rest] == [True] * 9 + [False]


@pytest.mark.redis
def test_request_larger_than_the_tpm_limit_is_denied_for_good(org: str) -> None:
    denied = run(
        lambda r: Limits(r).admit(
            org_id=org, cost_nanousd=0, tokens=150, rate_limits=[RateLimit("key", "11", "tpm", 100)]
        )
    )
    assert not denied.ok and denied.denied_by == "tpm:key" and denied.retry_after is None


@pytest.mark.redis
def test_settle_corrects_tpm_by_actual_tokens(org: str) -> None:
    rates = [RateLimit("key", "11", "tpm", 1000)]

    async def scenario(r):  # type: ignore[no-untyped-def]
        lim = Limits(r)
        a = await lim.admit(org_id=org, cost_nanousd=0, tokens=900, rate_limits=rates)
        before = await lim.admit(org_id=org, cost_nanousd=0, tokens=800, rate_limits=rates)
        await lim.settle(reservation_id=rid(a), actual_nanousd=0, actual_tokens=100)
        credited = await lim.admit(org_id=org, cost_nanousd=0, tokens=800, rate_limits=rates)
        # Underestimate: 100 estimated, 1000 used -> the bucket goes into debt.
        b = await lim.admit(org_id=org, cost_nanousd=0, tokens=0, rate_limits=rates)
        await lim.settle(reservation_id=rid(b), actual_nanousd=0, actual_tokens=1000)
        indebted = await lim.admit(org_id=org, cost_nanousd=0, tokens=1, rate_limits=rates)
        return before, credited, indebted

    before, credited, indebted = run(scenario)
    assert not before.ok
    assert credited.ok
    assert not indebted.ok
    # Debt of ~900+ tokens at 1000/min: about a minute to recover.
    assert indebted.retry_after is not None and indebted.retry_after > 50


# ---------------------------------------------------------------- concurrency (two OS processes)


def _worker(
    url: str,
    org: str,
    n: int,
    cost: int,
    budgets: list[BudgetLimit],
    rates: list[RateLimit],
    barrier: Any,
    out: Any,
) -> None:
    async def main() -> list[str]:
        client = _client(url, max_connections=n)
        lim = Limits(client)
        await client.ping()  # connect before the barrier so the admits really overlap
        barrier.wait()
        res = await asyncio.gather(
            *[
                lim.admit(org_id=org, cost_nanousd=cost, budgets=budgets, rate_limits=rates)
                for _ in range(n)
            ]
        )
        await client.aclose()
        return [a.reservation_id for a in res if a.ok and a.reservation_id]

    out.put(asyncio.run(main()))


def _admit_from_two_processes(
    *, org: str, per_process: int, cost: int, budgets: list[BudgetLimit], rates: list[RateLimit]
) -> list[str]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(_redis_url(), org, per_process, cost, budgets, rates, barrier, out),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    ids = out.get(timeout=60) + out.get(timeout=60)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return ids


@pytest.mark.redis
@pytest.mark.slow
def test_concurrent_admits_from_two_processes_never_overshoot_the_budget(same_utc_day: None,
                                                                         org: str) -> None:
    budgets = [org_day(org, 1_000), key_day(5_000)]
    admitted = _admit_from_two_processes(
        org=org, per_process=25, cost=100, budgets=budgets, rates=[]
    )
    assert len(admitted) == 10 and len(set(admitted)) == 10

    async def settle_all(r):  # type: ignore[no-untyped-def]
        # Ten settles open ten connections at once; on a loaded host that can pass the client's
        # 0.25 s connect timeout and the 0.5 s operation timeout. This step checks the
        # accounting, not timeouts (the limits_unavailable tests below do), so both get 5 s.
        lim = Limits(r, op_timeout_s=5.0)
        held = await lim.get_spend(org_id=org, budgets=budgets)
        await asyncio.gather(
            *[lim.settle(reservation_id=rid, actual_nanousd=60) for rid in admitted]
        )
        return held, await lim.get_spend(org_id=org, budgets=budgets)

    held, settled = run(settle_all, timeout_s=5.0)
    assert [(s.spent_nanousd, s.reserved_nanousd) for s in held] == [(0, 1000)] * 2
    assert [(s.spent_nanousd, s.reserved_nanousd) for s in settled] == [(600, 0)] * 2

    # 400 nano-USD left: a second storm admits exactly 4 more.
    more = _admit_from_two_processes(org=org, per_process=25, cost=100, budgets=budgets, rates=[])
    assert len(more) == 4
    final = run(lambda r: Limits(r).get_spend(org_id=org, budgets=budgets))
    assert final[0].used_nanousd == 1_000


@pytest.mark.redis
@pytest.mark.slow
def test_concurrent_rpm_from_two_processes_is_exact(org: str) -> None:
    rates = [RateLimit("key", "11", "rpm", 7), RateLimit("org", org, "rpm", 100)]
    admitted = _admit_from_two_processes(org=org, per_process=25, cost=0, budgets=[], rates=rates)
    assert len(admitted) == 7


# ---------------------------------------------------------------- circuit breaker


def _breaker(r: Any, **kw: Any) -> CircuitBreaker:
    conf: dict[str, Any] = {"failure_threshold": 3, "window_s": 5, "cooldown_s": 0.3, "cache_s": 0}
    conf.update(kw)
    return CircuitBreaker(r, **conf)


@pytest.mark.redis
def test_breaker_opens_half_opens_and_closes(org: str) -> None:
    name = f"openai/{org}"

    async def scenario(r):  # type: ignore[no-untyped-def]
        cb = _breaker(r)
        seen: list[Any] = []
        for _ in range(2):
            await cb.record_failure(name)
        seen.append((await cb.states([name]))[name])  # 2 < 3 failures: closed
        await cb.record_failure(name)
        seen.append((await cb.states([name]))[name])
        seen.append(await cb.allow(name))  # open: refused
        await asyncio.sleep(0.35)
        seen.append((await cb.states([name]))[name])  # cool-down over
        seen.append((await cb.allow(name), await cb.allow(name)))  # one probe only
        await cb.record_failure(name)  # the probe failed: open again
        seen.append((await cb.states([name]))[name])
        await asyncio.sleep(0.35)
        seen.append(await cb.allow(name))
        await cb.record_success(name)
        seen.append((await cb.states([name]))[name])
        seen.append(await cb.allow(name))
        return seen

    assert run(scenario) == [
        "closed",
        "open",
        False,
        "half_open",
        (True, False),
        "open",
        True,
        "closed",
        True,
    ]


@pytest.mark.redis
def test_breaker_only_counts_failures_within_the_window(org: str) -> None:
    async def scenario(r):  # type: ignore[no-untyped-def]
        cb = _breaker(r, failure_threshold=2, window_s=0.2)
        await cb.record_failure(f"a/{org}")
        await asyncio.sleep(0.3)
        await cb.record_failure(f"a/{org}")
        first = (await cb.states([f"a/{org}"]))[f"a/{org}"]
        await cb.record_failure(f"a/{org}")
        return first, (await cb.states([f"a/{org}"]))[f"a/{org}"]

    assert run(scenario) == ("closed", "open")


@pytest.mark.redis
def test_breaker_reissues_probe_when_a_prober_never_reports(org: str) -> None:
    async def scenario(r):  # type: ignore[no-untyped-def]
        cb = _breaker(r, failure_threshold=1, cooldown_s=0.1, probe_timeout_s=0.3)
        await cb.record_failure(f"a/{org}")
        await asyncio.sleep(0.15)
        probe, blocked = await cb.allow(f"a/{org}"), await cb.allow(f"a/{org}")
        await asyncio.sleep(0.35)  # the prober crashed
        return probe, blocked, await cb.allow(f"a/{org}")

    assert run(scenario) == (True, False, True)


@pytest.mark.redis
def test_breaker_state_is_shared_and_cache_bounds_staleness(org: str) -> None:
    async def scenario(r):  # type: ignore[no-untyped-def]
        other_process = _breaker(r, failure_threshold=1, cooldown_s=5)
        cached = _breaker(r, failure_threshold=1, cooldown_s=5, cache_s=1.0)
        fresh = _breaker(r, failure_threshold=1, cooldown_s=5)
        warm = await cached.allow(f"a/{org}")  # caches "closed"
        await other_process.record_failure(f"a/{org}")
        stale = await cached.allow(f"a/{org}")  # within cache_s: still sees closed
        shared = await fresh.allow(f"a/{org}")
        await asyncio.sleep(1.05)
        expired = await cached.allow(f"a/{org}")
        many = await fresh.states([f"a/{org}", f"b/{org}", f"c/{org}"])
        return warm, stale, shared, expired, many

    warm, stale, shared, expired, many = run(scenario)
    assert (warm, stale, shared, expired) == (True, True, False, False)
    assert many == {f"a/{org}": "open", f"b/{org}": "closed", f"c/{org}": "closed"}


# ---------------------------------------------------------------- Redis unreachable


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _all_operations() -> list[Callable[[Any], Awaitable[Any]]]:
    budgets = [org_day(ORG, 10)]
    return [
        lambda r: Limits(r).admit(org_id=ORG, cost_nanousd=1, budgets=budgets),
        lambda r: Limits(r).settle(reservation_id=f"{ORG}:x", actual_nanousd=1),
        lambda r: Limits(r).release(reservation_id=f"{ORG}:x"),
        lambda r: Limits(r).get_spend(org_id=ORG, budgets=budgets),
        lambda r: CircuitBreaker(r).allow("a/m"),
        lambda r: CircuitBreaker(r).record_failure("a/m"),
        lambda r: CircuitBreaker(r).states(["a/m"]),
    ]


def test_closed_port_raises_limits_unavailable_quickly() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/{TEST_DB}"
    for op in _all_operations():
        started = time.perf_counter()
        with pytest.raises(LimitsUnavailable):
            run(op, url=url)
        assert time.perf_counter() - started < 1.0


def test_silent_server_raises_limits_unavailable_within_the_timeout() -> None:
    # Accepts TCP connections (kernel backlog) but never answers: the hung-server case.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/{TEST_DB}"
    try:
        for op in _all_operations()[:2]:
            started = time.perf_counter()
            with pytest.raises(LimitsUnavailable):
                run(op, url=url, timeout_s=0.2)
            assert time.perf_counter() - started < 1.0
    finally:
        listener.close()


# ---------------------------------------------------------------- single-process mode


def test_scripts_also_run_on_fakeredis_for_single_process_mode() -> None:
    # Without REDIS_URL the gateway runs the same Lua on fakeredis (lupa); keep it compatible.
    import fakeredis

    async def scenario() -> list[Any]:
        r = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        lim, org = Limits(r), str(uuid.uuid4())
        budgets = [org_day(org, 1_000)]
        rates = [RateLimit("key", "1", "rpm", 2)]
        a = await lim.admit(org_id=org, cost_nanousd=600, budgets=budgets, rate_limits=rates)
        over = await lim.admit(org_id=org, cost_nanousd=600, budgets=budgets, rate_limits=rates)
        settled = await lim.settle(reservation_id=rid(a), actual_nanousd=250, actual_tokens=3)
        again = await lim.settle(reservation_id=rid(a), actual_nanousd=250)
        b = await lim.admit(org_id=org, cost_nanousd=700, budgets=budgets, rate_limits=rates)
        limited = await lim.admit(org_id=org, cost_nanousd=0, budgets=budgets, rate_limits=rates)
        spend = await lim.get_spend(org_id=org, budgets=budgets)
        cb = CircuitBreaker(r, failure_threshold=1, cooldown_s=5, cache_s=0)
        await cb.record_failure(f"x/{org}")
        return [
            a.ok,
            over.denied_by,
            settled.outcome,
            again.outcome,
            b.ok,
            limited.denied_by,
            (spend[0].spent_nanousd, spend[0].reserved_nanousd),
            await cb.allow(f"x/{org}"),
            list((await cb.states([f"x/{org}"])).values()),
        ]

    assert asyncio.run(scenario()) == [
        True,
        "budget:org:day",
        "settled",
        "already_settled",
        True,
        "rpm:key",
        (250, 700),
        False,
        ["open"],
    ]
