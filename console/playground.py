"""Playground: one prompt through the same pipeline, governance and ledger as `/v1/chat/completions`.

Who is billed and recorded: the request runs as the organization's "console playground" API key
(`governance.services.playground_key`, scope infer, issued and audited on first use), so budgets,
rate limits, the model policy and the ledger apply exactly as to any key; the ledger row's `user` is
`user:<login>` and an audit row `playground_request` names the person. The form is session
authenticated and CSRF protected; the body is built as an OpenAI chat body and validated by the same
function as the API's. The answer streams back as server-sent events, then one `done` event with what
the ledger recorded (model, cost, cost without Asahi, cache tier, similarity, reasons).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from asahi_project.client_ip import client_ip
from asahi_project.errors import AsahiError, InvalidRequest, PermissionDenied, error_response
from asahi_project.textrules import validate_name
from console.access import current_organization, has_role, role_required
from governance.selectors import key_context
from governance.services import actor_for_user, playground_key
from inference import pipeline
from inference.ledger import AuditRow, LedgerRow, ledger
from inference.providers.errors import ProviderError
from inference.selectors import get_catalogue
from inference.services import chat_call
from inference.validation import LATENCY_PREFS, QUALITY_PREFS, ROUTING_MODES

TIER_NAMES = pipeline.TIER_NAMES


def _choices(values: tuple[str, ...], default_label: str) -> list[tuple[str, str]]:
    return [("", default_label)] + [(v, v) for v in values]


class PlaygroundForm(forms.Form):
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), strip=False,
                             max_length=settings.ASAHI_MAX_PROMPT_CHARS)
    model = forms.ChoiceField(initial="auto")
    routing_mode = forms.ChoiceField(choices=_choices(ROUTING_MODES, "default"), required=False)
    quality_preference = forms.ChoiceField(choices=_choices(QUALITY_PREFS, "default"),
                                           required=False)
    latency_preference = forms.ChoiceField(choices=_choices(LATENCY_PREFS, "default"),
                                           required=False)
    document_id = forms.CharField(
        required=False, max_length=128, validators=[validate_name],
        help_text="Tier 3: put the document between &lt;document&gt; and &lt;/document&gt; in "
                  "the prompt.")
    cache = forms.BooleanField(required=False, initial=True, label="Use the cache")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = sorted(m.name for m in get_catalogue().chat_models())
        model = self.fields["model"]
        assert isinstance(model, forms.ChoiceField)
        model.choices = [("auto", "auto (Asahi routes)")] + [(n, n) for n in names]

    def chat_body(self, *, user: str) -> dict[str, Any]:
        """The form as the API's chat body (what an SDK user would send)."""
        d = self.cleaned_data
        body: dict[str, Any] = {
            "model": d["model"], "stream": True, "user": user,
            "messages": [{"role": "user", "content": d["prompt"]}],
            # Off means neither read nor write, as `cache: no-store` does for an API caller.
            "cache": "default" if d["cache"] else "no-store",
        }
        for name in ("routing_mode", "quality_preference", "latency_preference", "document_id"):
            if d.get(name):
                body[name] = d[name]
        return body


@role_required("viewer")
def playground(request: HttpRequest) -> HttpResponse:
    return render(request, "console/playground.html", {
        "form": PlaygroundForm(), "may_run": has_role(request.membership, "member"),  # type: ignore[attr-defined]
    })


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _form_error(form: PlaygroundForm) -> AsahiError:
    field, errors = next(iter(form.errors.items()))
    text = " ".join(str(e) for e in errors)
    return InvalidRequest(f"{field}: {text}", param=None if field == "__all__" else field)


@require_POST
@role_required("member")
async def playground_run(request: HttpRequest) -> HttpResponseBase:
    try:
        return await _run(request)
    except AsahiError as err:
        return error_response(err)


async def _run(request: HttpRequest) -> HttpResponseBase:
    form = await sync_to_async(PlaygroundForm)(request.POST)
    if not await sync_to_async(form.is_valid)():
        raise _form_error(form)
    user = await request.auser()
    actor = actor_for_user(user)
    org = current_organization(request)
    ip = client_ip(request)
    key = await sync_to_async(playground_key)(organization=org, actor=actor, created_by=user,
                                              ip=ip)
    auth = await sync_to_async(key_context)(key.prefix)
    if auth.frozen:  # as `inference.api.authenticate` refuses a frozen key
        raise PermissionDenied("the playground key is frozen after a spend anomaly; an admin can "
                               "unfreeze it", code="key_frozen")
    call = chat_call(auth=auth, body=form.chat_body(user=actor), request=request)
    recorded: list[LedgerRow] = []
    call.ledger_adjust = recorded.append  # reads the row the pipeline writes; changes nothing
    ledger.audit(AuditRow(action="playground_request", actor=actor, organization_id=org.pk,
                          target_type="api_key", target_id=key.prefix, ip=ip,
                          request_id=call.request_id,
                          details={"model": call.chat.model, "cache": call.cache_mode,
                                   "document_id": call.document_id}))
    if call.document_id:
        from caching.intermediate import infer_with_document

        call.chat.stream = False
        resp = await infer_with_document(call)
        start = pipeline.replay(resp)
        final: pipeline.GatewayResponse | None = resp
    else:
        start = await pipeline.start_stream(call)
        final = None
    response = StreamingHttpResponse(_events(call, start, recorded, final),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _events(call: pipeline.GatewayCall, start: pipeline.StreamStart,
                  recorded: list[LedgerRow], final: pipeline.GatewayResponse | None,
                  ) -> AsyncIterator[bytes]:
    try:
        async for ev in start.events:
            if ev.type == "delta" and ev.text:
                yield _sse({"type": "delta", "text": ev.text})
    except ProviderError as exc:
        yield _sse({"type": "error", "message": f"upstream stream broke: {exc.message}"})
        return
    finally:
        await start.aclose()
    yield _sse({"type": "done", **_facts(call, start, recorded, final)})


def _facts(call: pipeline.GatewayCall, start: pipeline.StreamStart, recorded: list[LedgerRow],
           final: pipeline.GatewayResponse | None) -> dict[str, Any]:
    if final is not None:  # tier 3: the response carries the totals of its steps
        tier, cost, baseline = final.cache_tier, final.cost, final.baseline_cost
        similarity, routing, model = final.similarity, final.routing_reason, final.model.name
    elif recorded:
        row = recorded[-1]
        tier, cost, baseline = row.cache_tier, row.cost_usd, row.baseline_cost_usd
        similarity, routing, model = row.cache_similarity, row.routing_reason, row.model
    else:  # not recorded (cannot happen for a finished stream); say so rather than invent
        tier, cost, baseline = start.cache_tier, None, None
        similarity, routing, model = start.similarity, "", start.model.name
    return {
        "request_id": call.request_id, "model": model, "cache_tier": tier,
        "cache": TIER_NAMES.get(tier, str(tier)),
        "cost_usd": None if cost is None else str(cost),
        "baseline_cost_usd": None if baseline is None else str(baseline),
        "similarity": similarity, "cache_reason": call.semantic_reason,
        "routing_reason": routing,
    }
