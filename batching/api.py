"""The OpenAI-compatible Files and Batches surface, and deferred /infer. Thin views: validate,
authenticate (scope ``infer``, as for /v1/*), call a service or selector, render."""

from __future__ import annotations

from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from asahi_project.client_ip import client_ip
from asahi_project.errors import InvalidRequest
from batching import selectors, services
from batching.choices import BatchKind
from inference import api as gateway
from inference.validation import parse_json, validate_infer_body

_sync = sync_to_async


def _json(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


@gateway.endpoint("POST")
async def files(request: HttpRequest) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")
    if not (request.content_type or "").startswith("multipart/form-data"):
        raise InvalidRequest("upload the file as multipart/form-data with fields 'file' and "
                             "'purpose'", code="invalid_content_type")
    upload = request.FILES.get("file")
    if upload is None:
        raise InvalidRequest("file is required", param="file")
    if upload.size and upload.size > settings.ASAHI_BATCH_MAX_FILE_BYTES:
        from asahi_project.errors import PayloadTooLarge

        raise PayloadTooLarge(f"file is {upload.size} bytes; the limit is "
                              f"{settings.ASAHI_BATCH_MAX_FILE_BYTES}", code="file_too_large",
                              param="file")
    f = await _sync(services.file_upload, thread_sensitive=False)(
        auth=auth, purpose=request.POST.get("purpose", ""), filename=upload.name or "input.jsonl",
        data=upload.read())
    return _json(selectors.file_json(f))


@gateway.endpoint("GET")
async def file_detail(request: HttpRequest, file_id: str) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")
    f = await _sync(selectors.file_get, thread_sensitive=False)(org_id=auth.org_id,
                                                                file_id=file_id)
    return _json(selectors.file_json(f))


@gateway.endpoint("GET")
async def file_content(request: HttpRequest, file_id: str) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")

    def read() -> bytes:
        return services.file_read(selectors.file_get(org_id=auth.org_id, file_id=file_id))

    data = await _sync(read, thread_sensitive=False)()
    return HttpResponse(data, content_type="application/jsonl")


@gateway.endpoint("GET", "POST")
async def batches(request: HttpRequest) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")
    if request.method == "GET":
        try:
            limit = int(request.GET.get("limit", "20"))
        except ValueError as exc:
            raise InvalidRequest("limit must be an integer", param="limit") from exc
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit must be between 1 and 100", param="limit")
        page = await _sync(selectors.batch_list, thread_sensitive=False)(
            org_id=auth.org_id, after=request.GET.get("after") or None, limit=limit)
        return _json(page)
    body = parse_json(request.body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    unknown = sorted(set(body) - {"input_file_id", "endpoint", "completion_window", "metadata"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise InvalidRequest(f"{name} is required and must be a string", param=name)
    metadata = body.get("metadata")
    if metadata is not None and (
            not isinstance(metadata, dict) or len(metadata) > 16
            or not all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str)
                       and len(v) <= 512 for k, v in metadata.items())):
        raise InvalidRequest("metadata must be at most 16 string pairs (keys up to 64 "
                             "characters, values up to 512)", param="metadata")
    batch = await services.batch_create(
        auth=auth, input_file_id=body["input_file_id"], endpoint=body["endpoint"],
        completion_window=body["completion_window"], metadata=metadata, ip=client_ip(request))
    return _json(await _sync(selectors.batch_json, thread_sensitive=False)(batch))


@gateway.endpoint("GET")
async def batch_detail(request: HttpRequest, batch_id: str) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")

    def get() -> dict[str, Any]:
        return selectors.batch_json(selectors.batch_get(org_id=auth.org_id, batch_id=batch_id))

    return _json(await _sync(get, thread_sensitive=False)())


@gateway.endpoint("POST")
async def batch_cancel(request: HttpRequest, batch_id: str) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")

    def cancel() -> dict[str, Any]:
        selectors.batch_get(org_id=auth.org_id, batch_id=batch_id)  # OpenAI batches only
        return selectors.batch_json(services.batch_cancel(auth=auth, batch_id=batch_id,
                                                          ip=client_ip(request)))

    return _json(await _sync(cancel, thread_sensitive=False)())


@gateway.endpoint("POST")
async def infer(request: HttpRequest) -> HttpResponseBase:
    """/infer: with ``"deferrable": true`` the request is queued (202, a job id and a status URL)
    and answered through the batch machinery; otherwise the synchronous /infer answers it."""
    try:
        peek = orjson.loads(request.body) if len(request.body) <= \
            settings.DATA_UPLOAD_MAX_MEMORY_SIZE else None
    except orjson.JSONDecodeError:
        peek = None
    if not isinstance(peek, dict) or peek.get("deferrable") is not True:
        return await gateway.infer(request)  # its own checks, in its own order
    auth = await gateway.authenticate(request, "infer")
    body = parse_json(request.body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    validate_infer_body(body, max_prompt_chars=settings.ASAHI_MAX_PROMPT_CHARS)
    if body.get("document_id"):
        raise InvalidRequest("document_id cannot be deferred", param="document_id")
    if body.get("organization_id") and body["organization_id"] != str(auth.org_id):
        from asahi_project.errors import PermissionDenied

        raise PermissionDenied("organization_id does not match the API key's organization",
                               code="organization_forbidden")
    messages = [{"role": "user", "content": body["prompt"]}]
    if body.get("system"):
        messages.insert(0, {"role": "system", "content": body["system"]})
    chat: dict[str, Any] = {"model": body.get("model_override") or "auto", "messages": messages}
    mode = body.get("routing_mode") or ("explicit" if body.get("model_override") else "autopilot")
    chat["routing_mode"] = mode
    for src, dst in (("max_tokens", "max_tokens"), ("temperature", "temperature"),
                     ("user_id", "user"), ("cache", "cache")):
        if body.get(src) is not None:
            chat[dst] = body[src]
    for name in ("quality_preference", "latency_preference", "latency_budget_ms",
                 "quality_threshold", "cost_budget", "model_override"):
        if body.get(name) is not None:
            chat[name] = body[name]
    job = await services.deferred_create(auth=auth, body=chat,
                                         webhook_url=body.get("webhook_url"),
                                         ip=client_ip(request))
    data: dict[str, Any] = {"job_id": job.batch.id, "status": job.batch.status,
                            "status_url": f"/infer/jobs/{job.batch.id}"}
    if job.webhook_secret:
        data["webhook_secret"] = job.webhook_secret  # shown once; verifies X-Asahi-Signature
    response = _json(data, status=202)
    response["Location"] = data["status_url"]
    return response


@gateway.endpoint("GET")
async def infer_job(request: HttpRequest, job_id: str) -> HttpResponseBase:
    auth = await gateway.authenticate(request, "infer")

    def get() -> dict[str, Any]:
        return selectors.deferred_json(selectors.batch_get(org_id=auth.org_id, batch_id=job_id,
                                                           kind=BatchKind.DEFERRED))

    return _json(await _sync(get, thread_sensitive=False)())
