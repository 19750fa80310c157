"""Provider batch APIs through the official SDKs: OpenAI Batch and Anthropic Message Batches.

Each upstream request is named by Asahi's item id (``i<pk>``), which both providers accept as a
custom_id. A worker that died between "create" and "store the id" finds its batch again instead
of submitting twice (``find``): an OpenAI batch by its ``metadata.asahi_job``; an Anthropic message
batch (no metadata) by its requests' custom_ids, which can be read only once it has ended, so a
candidate still processing makes the job wait for it rather than risk paying twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol

import orjson

from inference.providers.anthropic_format import request_to_anthropic, result_from_anthropic
from inference.providers.errors import ProviderError
from inference.providers.openai_format import request_to_openai, result_from_openai
from inference.providers.types import ChatRequest, ChatResult
from inference.types import ModelInfo

# Kinds whose provider offers a batch API at half the synchronous price.
BATCH_KINDS = ("openai", "anthropic")
_TIMEOUT_S = 60.0


@dataclass
class Outcome:
    """One request's result: an answer, or the provider's error for it."""

    upstream_custom_id: str
    result: ChatResult | None = None
    status_code: int = 200
    error: dict[str, Any] | None = None


@dataclass
class UpstreamState:
    ended: bool
    status: str


# ``find``'s answer when an earlier submission may be at the provider but cannot be told yet.
WAIT: Final = "wait"
Found = str | Literal["wait"] | None


class BatchAPI(Protocol):
    def find(self, job_key: str, *, custom_ids: list[str], since: datetime) -> Found: ...
    def submit(self, job_key: str, requests: list[tuple[str, ChatRequest]]) -> str: ...
    def state(self, upstream_id: str) -> UpstreamState: ...
    def results(self, upstream_id: str) -> Iterator[Outcome]: ...
    def cancel(self, upstream_id: str) -> None: ...


class OpenAIBatches:
    def __init__(self, model: ModelInfo) -> None:
        import openai

        self.client = openai.OpenAI(api_key=model.api_key or None, base_url=model.base_url or None,
                                    max_retries=2, timeout=_TIMEOUT_S)

    def find(self, job_key: str, *, custom_ids: list[str], since: datetime) -> Found:
        # Newest first; a job is looked for only right after its own failed attempt.
        for b in self.client.batches.list(limit=100).data:
            if (b.metadata or {}).get("asahi_job") == job_key:
                return b.id
        return None

    def submit(self, job_key: str, requests: list[tuple[str, ChatRequest]]) -> str:
        lines = []
        for cid, req in requests:
            body = request_to_openai(req, max_tokens_field="max_completion_tokens")
            body.update(req.extra or {})
            lines.append(orjson.dumps({"custom_id": cid, "method": "POST",
                                       "url": "/v1/chat/completions", "body": body}))
        f = self.client.files.create(file=("asahi-batch.jsonl", b"\n".join(lines)),
                                     purpose="batch")
        b = self.client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                       completion_window="24h", metadata={"asahi_job": job_key})
        return b.id

    def state(self, upstream_id: str) -> UpstreamState:
        b = self.client.batches.retrieve(upstream_id)
        return UpstreamState(ended=b.status in ("completed", "failed", "expired", "cancelled"),
                             status=b.status)

    def results(self, upstream_id: str) -> Iterator[Outcome]:
        b = self.client.batches.retrieve(upstream_id)
        for file_id in (b.output_file_id, b.error_file_id):
            if not file_id:
                continue
            for raw in self.client.files.content(file_id).content.splitlines():
                if not raw.strip():
                    continue
                line = orjson.loads(raw)
                resp = line.get("response") or {}
                status = int(resp.get("status_code") or 500)
                if status == 200:
                    try:
                        yield Outcome(line["custom_id"], result=result_from_openai(resp["body"]))
                    except ProviderError as exc:
                        yield Outcome(line["custom_id"], status_code=502,
                                      error={"code": "upstream_malformed", "message": exc.message})
                else:
                    err = (resp.get("body") or {}).get("error") or line.get("error") or {}
                    yield Outcome(line["custom_id"], status_code=status,
                                  error={"code": f"upstream_{status}",
                                         "message": str(err.get("message", "upstream error"))})

    def cancel(self, upstream_id: str) -> None:
        self.client.batches.cancel(upstream_id)


class AnthropicBatches:
    def __init__(self, model: ModelInfo) -> None:
        import anthropic

        self.client = anthropic.Anthropic(api_key=model.api_key or None,
                                          base_url=model.base_url or None, max_retries=2,
                                          timeout=_TIMEOUT_S)

    def find(self, job_key: str, *, custom_ids: list[str], since: datetime) -> Found:
        """The message batch created since ``since`` whose requests are exactly ``custom_ids``
        (item ids are unique, so a match is this job's). Candidates with the right request count
        that are still processing cannot be read yet: WAIT, and look again next tick."""
        want, waiting = set(custom_ids), False
        for b in self.client.messages.batches.list(limit=100):  # most recent first, paginated
            if b.created_at < since:
                break
            c = b.request_counts
            if c.processing + c.succeeded + c.errored + c.canceled + c.expired != len(want):
                continue
            if b.processing_status != "ended":
                waiting = True
                continue
            if {e.custom_id for e in self.client.messages.batches.results(b.id)} == want:
                return b.id
        return WAIT if waiting else None

    def submit(self, job_key: str, requests: list[tuple[str, ChatRequest]]) -> str:
        reqs: list[Any] = []
        for cid, req in requests:
            params = request_to_anthropic(req)
            params.update(params.pop("extra_body", None) or {})
            reqs.append({"custom_id": cid, "params": params})
        return str(self.client.messages.batches.create(requests=reqs).id)

    def state(self, upstream_id: str) -> UpstreamState:
        b = self.client.messages.batches.retrieve(upstream_id)
        return UpstreamState(ended=b.processing_status == "ended", status=b.processing_status)

    def results(self, upstream_id: str) -> Iterator[Outcome]:
        for entry in self.client.messages.batches.results(upstream_id):
            r = entry.result
            if r.type == "succeeded":
                yield Outcome(entry.custom_id,
                              result=result_from_anthropic(r.message.model_dump(mode="json")))
            elif r.type == "errored":
                err = r.error.model_dump(mode="json") if r.error is not None else {}
                message = (err.get("error") or {}).get("message", "upstream error")
                yield Outcome(entry.custom_id, status_code=502,
                              error={"code": "upstream_error", "message": str(message)})
            # canceled / expired: no result; the item stays open until the batch ends it

    def cancel(self, upstream_id: str) -> None:
        self.client.messages.batches.cancel(upstream_id)


def batch_api(model: ModelInfo) -> BatchAPI:
    if model.provider_kind == "openai":
        return OpenAIBatches(model)
    if model.provider_kind == "anthropic":
        return AnthropicBatches(model)
    raise ValueError(f"{model.provider_kind} has no batch API")
