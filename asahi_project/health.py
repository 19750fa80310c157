"""GET /health: liveness plus the state of every component. 503 when the database is down."""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

STARTED = time.time()


def _database() -> dict[str, object]:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cur.fetchone()
        return {"status": "ok", "pgvector": row[0] if row else None}
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}


def _redis() -> dict[str, object]:
    if settings.REDIS_URL is None:
        return {"status": "single-process", "detail": "REDIS_URL unset: in-process cache and limits"}
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                                      socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT)
        client.ping()
        return {"status": "ok"}
    except Exception as exc:
        return {
            "status": "down",
            "error": type(exc).__name__,
            "effect": "budgets and rate limits unavailable; each organization's policy decides "
                      "(fail closed by default)",
        }


def _broker() -> dict[str, object]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"status": "eager", "detail": "tasks run in-process"}
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                                 socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT).ping()
            return {"status": "ok"}
        except Exception as exc:
            return {"status": "down", "error": type(exc).__name__}
    return {"status": "configured", "url_scheme": url.split(":", 1)[0]}


def _providers() -> dict[str, object]:
    try:
        from inference.models import Provider

        rows = list(Provider.objects.filter(enabled=True).values_list("name", "kind"))
    except Exception:
        rows = []
    env = {kind: bool(os.environ.get(var)) for kind, var in (
        ("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"),
        ("cohere", "COHERE_API_KEY"))}
    return {"status": "ok" if rows or any(env.values()) else "none",
            "configured": [{"name": n, "kind": k} for n, k in rows], "env_keys": env}


def _ledger() -> dict[str, object]:
    """This process's ledger writer (each server process has its own buffer)."""
    from inference.ledger import ledger

    state = ledger.state()
    error = state.last_error
    out: dict[str, object] = {
        "status": "down" if state.failures else "ok",
        "pending": state.pending, "written": state.written,
        "dead_letters": state.dead_letters, "dropped": state.dropped,
        # The error's type and time only: /health is public, and a message can quote a row's data.
        "last_error": None if error is None else {"kind": error.kind, "type": error.type,
                                                   "at": error.at.isoformat()},
    }
    out["spool"] = {"rows": state.spooled, "bytes": state.spool_bytes,
                    "max_bytes": state.spool_max_bytes, "full": state.spool_full}
    if state.failures:
        out["detail"] = (f"{state.failures} flush(es) could not reach the database; rows are "
                         "spooled on local disk and written when it returns")
    if state.spool_full:
        out["status"] = "full"
        out["detail"] = ("the ledger spool is full (ASAHI_LEDGER_SPOOL_MAX_MB): new rows are kept "
                         "in memory up to ASAHI_LEDGER_MAX_PENDING, then dropped")
    return out


def health(request: HttpRequest) -> JsonResponse:
    components = {"database": _database(), "redis": _redis(), "broker": _broker(),
                  "providers": _providers(), "ledger": _ledger()}
    db_ok = components["database"]["status"] == "ok"
    degraded = any(c.get("status") in ("down", "full") for c in components.values())
    status = "down" if not db_ok else ("degraded" if degraded else "ok")
    return JsonResponse(
        {"status": status, "version": settings.VERSION,
         "uptime_seconds": round(time.time() - STARTED, 3), "components": components},
        status=200 if db_ok else 503,
    )
