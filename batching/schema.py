"""OpenAPI descriptions of the batching surface (plain Django views, described by hand like the
gateway's own paths in inference.schema)."""

from __future__ import annotations

from typing import Any

from inference.schema import _op

_TS = {"type": ["integer", "null"]}
FILE = {"type": "object", "required": ["id", "object", "bytes", "created_at", "filename",
                                       "purpose"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string", "enum": ["file"]},
                       "bytes": {"type": "integer"}, "created_at": {"type": "integer"},
                       "filename": {"type": "string"},
                       "purpose": {"type": "string", "enum": ["batch", "batch_output"]},
                       "status": {"type": "string"}}}
BATCH = {"type": "object", "required": ["id", "object", "endpoint", "status", "input_file_id",
                                        "completion_window", "created_at", "request_counts"],
         "properties": {
             "id": {"type": "string"}, "object": {"type": "string", "enum": ["batch"]},
             "endpoint": {"type": "string"}, "input_file_id": {"type": "string"},
             "completion_window": {"type": "string"},
             "status": {"type": "string", "enum": ["validating", "in_progress", "finalizing",
                                                   "completed", "failed", "expired",
                                                   "cancelling", "cancelled"]},
             "output_file_id": {"type": ["string", "null"]},
             "error_file_id": {"type": ["string", "null"]},
             "errors": {"type": ["object", "null"]},
             "metadata": {"type": ["object", "null"]},
             "request_counts": {"type": "object", "properties": {
                 "total": {"type": "integer"}, "completed": {"type": "integer"},
                 "failed": {"type": "integer"}}},
             **{k: _TS for k in ("created_at", "in_progress_at", "expires_at", "finalizing_at",
                                 "completed_at", "failed_at", "expired_at", "cancelling_at",
                                 "cancelled_at")}}}
BATCH_REQUEST = {"type": "object", "required": ["input_file_id", "endpoint", "completion_window"],
                 "properties": {
                     "input_file_id": {"type": "string", "minLength": 1, "maxLength": 40},
                     "endpoint": {"type": "string", "enum": ["/v1/chat/completions"]},
                     "completion_window": {"type": "string", "enum": ["24h"]},
                     "metadata": {"type": "object", "maxProperties": 16,
                                  "additionalProperties": {"type": "string", "maxLength": 512}}}}
JOB = {"type": "object", "required": ["job_id", "status"], "properties": {
    "job_id": {"type": "string"}, "status": BATCH["properties"]["status"],  # type: ignore[index]
    "created_at": {"type": "integer"}, "result": {"type": ["object", "null"]},
    "error": {"type": ["object", "null"]}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 40}}


def add_batch_paths(result: dict[str, Any], generator: Any, request: Any, public: bool
                    ) -> dict[str, Any]:
    paths = result.setdefault("paths", {})
    upload = _op("files_create", "Upload a batch input file (JSONL, multipart)", "batching",
                 None, FILE, (400, 401, 403, 413))
    upload["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file", "purpose"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "purpose": {"type": "string", "enum": ["batch"]}}}}}}
    paths["/v1/files"] = {"post": upload}
    paths["/v1/files/{file_id}"] = {"get": {
        **_op("files_retrieve", "A file", "batching", None, FILE, (401, 403, 404)),
        "parameters": [_path("file_id")]}}
    content = _op("files_content", "A file's bytes (input, output or error JSONL)", "batching",
                  None, {"type": "string"}, (401, 403, 404))
    content["responses"]["200"] = {"description": "OK", "content": {
        "application/jsonl": {"schema": {"type": "string"}}}}
    paths["/v1/files/{file_id}/content"] = {"get": {**content,
                                                   "parameters": [_path("file_id")]}}
    paths["/v1/batches"] = {
        "post": _op("batches_create", "Create a batch (reserves its worst case on the budgets)",
                    "batching", BATCH_REQUEST, BATCH, (400, 401, 403, 404, 413, 429, 503)),
        "get": {**_op("batches_list", "Batches, newest first", "batching", None,
                      {"type": "object", "properties": {"data": {"type": "array",
                                                                 "items": BATCH}}},
                      (400, 401, 403, 404)),
                "parameters": [
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "after", "in": "query", "schema": {"type": "string",
                                                                "maxLength": 40}}]},
    }
    paths["/v1/batches/{batch_id}"] = {"get": {
        **_op("batches_retrieve", "A batch", "batching", None, BATCH, (401, 403, 404)),
        "parameters": [_path("batch_id")]}}
    paths["/v1/batches/{batch_id}/cancel"] = {"post": {
        **_op("batches_cancel", "Cancel a batch", "batching", None, BATCH, (400, 401, 403, 404)),
        "parameters": [_path("batch_id")]}}
    paths["/infer/jobs/{job_id}"] = {"get": {
        **_op("infer_jobs_retrieve", "A deferred /infer request", "batching", None, JOB,
              (401, 403, 404)), "parameters": [_path("job_id")]}}
    infer = paths.get("/infer", {}).get("post")
    if infer is not None:  # /infer's deferrable form
        props = infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
        props["deferrable"] = {"type": "boolean", "description": "answer 202 and run later"}
        props["webhook_url"] = {"type": "string", "format": "uri", "maxLength": 2000,
                                "description": "with deferrable: POSTed the result, signed "
                                "(X-Asahi-Signature; docs/batching.md)"}
        infer["responses"]["202"] = {"description": "Accepted (deferrable)", "content": {
            "application/json": {"schema": {"type": "object", "required": ["job_id",
                                                                           "status_url"],
                                            "properties": {
                                                "job_id": {"type": "string"},
                                                "status": {"type": "string"},
                                                "status_url": {"type": "string"},
                                                "webhook_secret": {"type": "string"}}}}}}
    return result
