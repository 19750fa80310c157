"""Batch wire protocols: OpenAI's ``/v1/files`` + ``/v1/batches`` and Anthropic's
``/v1/messages/batches``.

A created batch runs its lines in the background by calling this same server's synchronous
endpoints over loopback HTTP (so answers, usage and fault markers are exactly the synchronous
ones), and reports completion once that is done and ``batch_delay_s`` has passed since creation.
Ids are stable per server instance; ``metadata`` is echoed and filterable on the list endpoint,
which is how a client that died between "create" and "store the id" finds its batch again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from .server import STATE, json_response

_CONCURRENCY = 64


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data),
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


@dataclass
class FakeBatch:
    id: str
    kind: str  # "openai" | "anthropic"
    created: float
    lines: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    input_file_id: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    cancelled: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None
    task: asyncio.Task[None] | None = None


class BatchStore:
    def __init__(self) -> None:
        self.files: dict[str, FakeFile] = {}
        self.batches: dict[str, FakeBatch] = {}


STORE: web.AppKey[BatchStore] = web.AppKey("fake_batches", BatchStore)


def _err(status: int, message: str) -> web.Response:
    return json_response({"error": {"message": message, "type": "invalid_request_error",
                                    "param": None, "code": None}}, status=status)


def _ended(request: web.Request, batch: FakeBatch) -> bool:
    delay = request.app[STATE].config.batch_delay_s
    return batch.cancelled or (batch.done and time.time() - batch.created >= delay)


async def _run(base: str, batch: FakeBatch) -> None:
    """Answer every line through the synchronous endpoint of this server."""
    sem = asyncio.Semaphore(_CONCURRENCY)
    path = "/v1/chat/completions" if batch.kind == "openai" else "/v1/messages"
    headers = {"x-api-key": "fake", "anthropic-version": "2023-06-01"}

    async with aiohttp.ClientSession() as session:
        async def one(line: dict[str, Any]) -> dict[str, Any]:
            body = line["body"] if batch.kind == "openai" else line["params"]
            async with sem:
                if batch.cancelled:
                    return {"custom_id": line["custom_id"], "cancelled": True}
                try:
                    async with session.post(base + path, json=body, headers=headers) as r:
                        status, data = r.status, await r.read()
                    payload = orjson.loads(data)
                except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
                    status, payload = 500, {"error": {"message": str(exc), "type": "api_error"}}
            return {"custom_id": line["custom_id"], "status": status, "body": payload}

        batch.results = list(await asyncio.gather(*(one(line) for line in batch.lines)))
    batch.done = True


def _start(request: web.Request, batch: FakeBatch) -> None:
    base = f"{request.scheme}://{request.host}"
    batch.task = asyncio.get_running_loop().create_task(_run(base, batch))
    request.app[STORE].batches[batch.id] = batch


# --- OpenAI --------------------------------------------------------------------------------------

async def file_create(request: web.Request) -> web.Response:
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return _err(400, "file: required")
    f = FakeFile(id=f"file-{uuid.uuid4().hex[:24]}", filename=upload.filename,
                 purpose=str(form.get("purpose", "batch")), data=upload.file.read(),
                 created_at=int(time.time()))
    request.app[STORE].files[f.id] = f
    return json_response(f.as_json())


def _file(request: web.Request) -> FakeFile | None:
    return request.app[STORE].files.get(request.match_info["file_id"])


async def file_get(request: web.Request) -> web.Response:
    f = _file(request)
    return json_response(f.as_json()) if f else _err(404, "No such File object")


async def file_content(request: web.Request) -> web.Response:
    f = _file(request)
    if f is None:
        return _err(404, "No such File object")
    return web.Response(body=f.data, content_type="application/octet-stream")


def _openai_results(request: web.Request, batch: FakeBatch) -> None:
    """Write the output and error files once, when the batch has ended."""
    if batch.output_file_id is not None or not _ended(request, batch):
        return
    ok: list[bytes] = []
    bad: list[bytes] = []
    for i, r in enumerate(batch.results):
        if r.get("cancelled"):
            continue
        line = {"id": f"batch_req_{batch.id[-8:]}_{i}", "custom_id": r["custom_id"],
                "response": {"status_code": r["status"], "request_id": f"req_{i}",
                             "body": r["body"]}, "error": None}
        (ok if r["status"] == 200 else bad).append(orjson.dumps(line))
    store = request.app[STORE]
    now = int(time.time())
    for lines, attr in ((ok, "output_file_id"), (bad, "error_file_id")):
        f = FakeFile(id=f"file-{uuid.uuid4().hex[:24]}", filename=f"{batch.id}_{attr}.jsonl",
                     purpose="batch_output", data=b"\n".join(lines) + b"\n" if lines else b"",
                     created_at=now)
        store.files[f.id] = f
        setattr(batch, attr, f.id)


def _openai_json(request: web.Request, batch: FakeBatch) -> dict[str, Any]:
    _openai_results(request, batch)
    ended = _ended(request, batch)
    status = ("cancelled" if batch.cancelled else "completed") if ended else "in_progress"
    failed = sum(1 for r in batch.results if r.get("status", 200) != 200) if ended else 0
    completed = sum(1 for r in batch.results if r.get("status") == 200) if ended else 0
    return {
        "id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
        "input_file_id": batch.input_file_id, "completion_window": "24h", "status": status,
        "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
        "created_at": int(batch.created), "in_progress_at": int(batch.created),
        "expires_at": int(batch.created) + 86400, "completed_at": int(time.time()) if ended else None,
        "failed_at": None, "expired_at": None, "cancelled_at": None, "cancelling_at": None,
        "finalizing_at": None,
        "request_counts": {"total": len(batch.lines), "completed": completed, "failed": failed},
        "metadata": batch.metadata,
    }


async def batch_create(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read() or b"{}")
    f = request.app[STORE].files.get(str(body.get("input_file_id")))
    if f is None:
        return _err(400, "input_file_id: no such file")
    lines = [orjson.loads(x) for x in f.data.splitlines() if x.strip()]
    batch = FakeBatch(id=f"batch_{uuid.uuid4().hex[:24]}", kind="openai", created=time.time(),
                      lines=lines, metadata=dict(body.get("metadata") or {}), input_file_id=f.id)
    _start(request, batch)
    return json_response(_openai_json(request, batch))


def _batch(request: web.Request, kind: str) -> FakeBatch | None:
    batch = request.app[STORE].batches.get(request.match_info["batch_id"])
    return batch if batch is not None and batch.kind == kind else None


async def batch_get(request: web.Request) -> web.Response:
    batch = _batch(request, "openai")
    return json_response(_openai_json(request, batch)) if batch else _err(404, "No such batch")


async def batch_cancel(request: web.Request) -> web.Response:
    batch = _batch(request, "openai")
    if batch is None:
        return _err(404, "No such batch")
    batch.cancelled = True
    return json_response(_openai_json(request, batch))


async def batch_list(request: web.Request) -> web.Response:
    data = [_openai_json(request, b) for b in request.app[STORE].batches.values()
            if b.kind == "openai"]
    data.reverse()  # newest first, as OpenAI lists them
    return json_response({"object": "list", "data": data, "has_more": False,
                          "first_id": data[0]["id"] if data else None,
                          "last_id": data[-1]["id"] if data else None})


# --- Anthropic -----------------------------------------------------------------------------------

def _anthropic_json(request: web.Request, batch: FakeBatch) -> dict[str, Any]:
    ended = _ended(request, batch)
    counts = {"processing": 0 if ended else len(batch.lines), "succeeded": 0, "errored": 0,
              "canceled": 0, "expired": 0}
    if ended:
        for r in batch.results or [{"cancelled": True}] * len(batch.lines):
            key = "canceled" if r.get("cancelled") else (
                "succeeded" if r["status"] == 200 else "errored")
            counts[key] += 1
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created))
    return {
        "id": batch.id, "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": counts, "created_at": iso,
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created + 86400)),
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ") if ended else None,
        "archived_at": None, "cancel_initiated_at": iso if batch.cancelled else None,
        "results_url": (f"{request.scheme}://{request.host}/v1/messages/batches/{batch.id}/results"
                        if ended else None),
    }


async def messages_batch_create(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read() or b"{}")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return _err(400, "requests: required")
    batch = FakeBatch(id=f"msgbatch_{uuid.uuid4().hex[:24]}", kind="anthropic",
                      created=time.time(), lines=requests)
    _start(request, batch)
    return json_response(_anthropic_json(request, batch))


async def messages_batch_list(request: web.Request) -> web.Response:
    data = [_anthropic_json(request, b) for b in request.app[STORE].batches.values()
            if b.kind == "anthropic"]
    data.reverse()  # most recently created first, as Anthropic lists them
    return json_response({"data": data, "has_more": False,
                          "first_id": data[0]["id"] if data else None,
                          "last_id": data[-1]["id"] if data else None})


async def messages_batch_get(request: web.Request) -> web.Response:
    batch = _batch(request, "anthropic")
    return json_response(_anthropic_json(request, batch)) if batch else _err(404, "not found")


async def messages_batch_cancel(request: web.Request) -> web.Response:
    batch = _batch(request, "anthropic")
    if batch is None:
        return _err(404, "not found")
    batch.cancelled = True
    return json_response(_anthropic_json(request, batch))


async def messages_batch_results(request: web.Request) -> web.Response:
    batch = _batch(request, "anthropic")
    if batch is None or not _ended(request, batch):
        return _err(404 if batch is None else 400, "results are not available yet")
    out = []
    for r in batch.results:
        if r.get("cancelled"):
            result: dict[str, Any] = {"type": "canceled"}
        elif r["status"] == 200:
            result = {"type": "succeeded", "message": r["body"]}
        else:
            result = {"type": "errored", "error": r["body"]}
        out.append(orjson.dumps({"custom_id": r["custom_id"], "result": result}))
    return web.Response(body=b"\n".join(out) + b"\n", content_type="application/binary")


def register(app: web.Application) -> None:
    app[STORE] = BatchStore()
    app.router.add_post("/v1/files", file_create)
    app.router.add_get("/v1/files/{file_id}", file_get)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_post("/v1/batches", batch_create)
    app.router.add_get("/v1/batches", batch_list)
    app.router.add_get("/v1/batches/{batch_id}", batch_get)
    app.router.add_post("/v1/batches/{batch_id}/cancel", batch_cancel)
    app.router.add_post("/v1/messages/batches", messages_batch_create)
    app.router.add_get("/v1/messages/batches", messages_batch_list)
    app.router.add_get("/v1/messages/batches/{batch_id}", messages_batch_get)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", messages_batch_results)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", messages_batch_cancel)
