"""Input files: the upload limit, per-line errors, webhook address checks and signatures."""

from __future__ import annotations

import json
import time

import openai
import pytest

from asahi_project.errors import InvalidRequest
from batching.jsonl import parse_lines
from batching.webhooks import check_webhook_url, sign, verify
from governance.selectors import auth_context_for_key
from inference.selectors import load_catalogue
from tests.batching.conftest import client_for

pytestmark = [pytest.mark.redis]


def test_oversize_file_is_refused_with_413(gateway, live_tenant, settings) -> None:
    settings.ASAHI_BATCH_MAX_FILE_BYTES = 2048
    client = client_for(gateway, live_tenant.infer.raw)
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=("big.jsonl", b"x" * 4096), purpose="batch")
    assert caught.value.status_code == 413
    assert caught.value.response.json()["error"]["code"] == "file_too_large"
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("f.jsonl", b'{"a": 1}'), purpose="fine-tune")


def test_each_bad_line_is_reported_on_its_own(db, catalogue, tenant, settings) -> None:
    settings.ASAHI_BATCH_MAX_LINE_BYTES = 400
    settings.ASAHI_BATCH_MAX_REQUESTS = 2
    auth = auth_context_for_key(key_id=tenant.infer.key.pk)
    assert auth is not None

    def line(cid: str, **body: object) -> str:
        full = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
        return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                           "body": full})

    data = "\n".join([
        line("ok1"),
        json.dumps({"custom_id": "big", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini",
                             "messages": [{"role": "user", "content": "x" * 500}]}}),
        "[1, 2]",
        json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
        line("stream", stream=True),
        line("no-messages", messages=[]),
        "",
        line("ok2", max_tokens=10),
        line("third", max_tokens=10),
    ]).encode()
    lines = parse_lines(data, catalogue=load_catalogue(), auth=auth)
    got = [(ln.line, ln.custom_id, ln.error_code) for ln in lines]
    assert got == [(1, "ok1", ""), (2, "", "line_too_large"), (3, "", "invalid_json"),
                   (4, "", "missing_custom_id"), (5, "stream", "invalid_request"),
                   (6, "no-messages", "invalid_request"), (8, "ok2", ""),
                   (9, "third", "too_many_requests")]
    assert "messages" in lines[5].error_message  # the chat endpoint's own message
    # Far past the limit the file is refused whole (no million error rows from one upload).
    with pytest.raises(InvalidRequest) as caught:
        parse_lines(b"\n".join([b"{bad"] * 1003), catalogue=load_catalogue(), auth=auth)
    assert caught.value.code == "too_many_requests"
    # Worst case of ok2: 10 output tokens at gpt-4o-mini's output price plus its prompt estimate.
    assert 0 < lines[6].worst_usd < lines[0].worst_usd


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://10.0.0.7/x", "http://[::1]:80/",
                                 "http://169.254.169.254/", "http://[::ffff:192.168.1.1]/",
                                 "http://0.0.0.0/", "file:///etc/passwd",
                                 "http://user:pw@93.184.216.34/"])
def test_internal_webhook_addresses_are_refused(settings, url: str) -> None:
    settings.ASAHI_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(InvalidRequest):
        check_webhook_url(url)


def test_public_webhook_address_and_operator_allowance(settings) -> None:
    settings.ASAHI_WEBHOOK_ALLOW_PRIVATE = False
    check_webhook_url("https://93.184.216.34/hook")  # a public literal address: no DNS needed
    settings.ASAHI_WEBHOOK_ALLOW_PRIVATE = True
    check_webhook_url("http://127.0.0.1:8080/hook")


def test_signature_binds_body_secret_and_time() -> None:
    body = b'{"job_id": "batch_x"}'
    header = sign("s3cret", body)
    assert verify("s3cret", body, header)
    assert not verify("s3cret", body.replace(b"x", b"y"), header)
    assert not verify("other", body, header)
    stale = sign("s3cret", body, timestamp=int(time.time()) - 3600)
    assert not verify("s3cret", body, stale)
