"""A stream the client abandons before its first byte gives back its budget reservation and its
single-flight lock at once, over a real server (not after their 600 s lifetime)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import httpx
import orjson
import pytest

from caching import keys
from governance.limits import BudgetLimit, Limits

pytestmark = [pytest.mark.redis]


async def _aspend(org_id: str) -> list[tuple[int, int]]:
    """(spent, reserved) of the organization's day and month budgets, as governance counts them."""
    from asahi_project.redis_client import get_async_redis

    budgets = [BudgetLimit(scope="org", scope_id=org_id, period="day", limit_nanousd=None),
               BudgetLimit(scope="org", scope_id=org_id, period="month", limit_nanousd=None)]
    spend = await Limits(get_async_redis()).get_spend(org_id=org_id, budgets=budgets)
    return [(s.spent_nanousd, s.reserved_nanousd) for s in spend]


def _reserved(org_id: str) -> list[int]:
    return [reserved for _, reserved in asyncio.run(_aspend(org_id))]


def _flight_locks(org_id: uuid.UUID) -> list[bytes]:
    from asahi_project.redis_client import get_sync_redis

    return list(get_sync_redis().scan_iter(keys.singleflight_key(org_id, "*"), count=1000))


def _open_and_abandon(base_url: str, key: str, body: dict[str, object]) -> None:
    """Send the whole request, then hang up before any response byte."""
    host, port = base_url.removeprefix("http://").split(":")
    payload = orjson.dumps(body)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        time.sleep(0.5)  # the gateway has admitted it and waits on the upstream's first event


def _wait_until(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_stream_abandoned_before_first_byte_releases_at_once(gateway, live_tenant):
    org = str(live_tenant.org.id)
    # The first content event comes 3 s after the request: the client leaves well before it.
    prompt = f"abandon {uuid.uuid4().hex} [[len:2]] [[chunk_ms:3000]]"
    body = {"model": "gpt-4o-mini", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": prompt}]}
    _open_and_abandon(gateway, live_tenant.infer.raw, body)

    assert _wait_until(lambda: not _flight_locks(live_tenant.org.id), timeout=1.0), \
        "the single-flight lock outlived the abandoned stream"
    assert _wait_until(lambda: _reserved(org) == [0, 0], timeout=1.0), _reserved(org)

    # The same request again leads at once instead of waiting on the abandoned leader.
    t0 = time.monotonic()
    r = httpx.post(f"{gateway}/v1/chat/completions", timeout=30,
                   headers={"Authorization": f"Bearer {live_tenant.infer.raw}"},
                   json={**body, "stream": False})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.headers["X-Asahi-Cache"] == "miss"
    assert elapsed < 2.0, f"second request took {elapsed:.2f} s"
    assert _reserved(org) == [0, 0]


def _stream_call(auth, prompt: str):  # type: ignore[no-untyped-def]
    from inference import pipeline
    from inference.providers.types import ChatMessage, ChatRequest

    return pipeline.GatewayCall(
        auth=auth, request_id=uuid.uuid4().hex, endpoint="chat",
        chat=ChatRequest(model="gpt-4o-mini", max_tokens=50, stream=True,
                         messages=[ChatMessage(role="user", content=prompt)]))


def _run_abandoned(live_tenant, leave) -> tuple[list[tuple[int, int]], int, list[tuple[int, int]],
                                               int]:  # type: ignore[no-untyped-def]
    """Start a stream (its first upstream event is in), let `leave` drop it without reading an
    event; (spend, flight locks) while held and just after."""
    from governance.selectors import authenticate_key
    from inference import pipeline

    auth = authenticate_key(live_tenant.infer.raw)
    org = str(live_tenant.org.id)

    async def scenario():  # type: ignore[no-untyped-def]
        call = _stream_call(auth, f"unread {uuid.uuid4().hex} [[len:2]]")
        start = await pipeline.start_stream(call)
        held = await _aspend(org), len(_flight_locks(live_tenant.org.id))
        await leave(call, start)
        del start
        await asyncio.sleep(0.1)  # a close scheduled by a finalizer runs on the next iterations
        return (*held, await _aspend(org), len(_flight_locks(live_tenant.org.id)))

    return asyncio.run(scenario())


def test_stream_never_iterated_releases_at_once(gateway, live_tenant):
    async def drop(call, start) -> None:  # type: ignore[no-untyped-def]
        pass  # the view raised, or the client left before the response started

    held, locks_held, after, locks_after = _run_abandoned(live_tenant, drop)
    assert held[0][1] > 0 and locks_held == 1
    assert (after, locks_after) == ([(0, 0), (0, 0)], 0)  # released, not settled: nothing sent


def test_response_closed_before_first_event_releases_at_once(gateway, live_tenant):
    """What Django's ASGI handler does when sending fails after the role chunk."""
    from contextlib import aclosing

    from inference import api

    async def close_after_role_chunk(call, start) -> None:  # type: ignore[no-untyped-def]
        response = await api._stream_response(call, start)
        async with aclosing(aiter(response)) as content:
            async for part in content:
                assert b'"role":"assistant"' in part
                break
        del response, content

    held, locks_held, after, locks_after = _run_abandoned(live_tenant, close_after_role_chunk)
    assert held[0][1] > 0 and locks_held == 1
    assert (after, locks_after) == ([(0, 0), (0, 0)], 0)
