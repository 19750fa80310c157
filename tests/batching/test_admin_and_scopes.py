"""The admin lists batches with status and counts; the batch endpoints need the infer scope."""

from __future__ import annotations

from datetime import timedelta

import openai
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from batching.models import Batch, BatchItem
from tests.batching.conftest import client_for


@pytest.mark.django_db
def test_admin_lists_batches_with_status_and_counts(client: Client, tenant) -> None:
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-12345")
    client.force_login(user)
    batch = Batch.objects.create(organization=tenant.org, status="in_progress",
                                 expires_at=timezone.now() + timedelta(hours=24))
    BatchItem.objects.bulk_create(
        [BatchItem(batch=batch, custom_id=f"r{i}", line=i + 1, state=state)
         for i, state in enumerate(["done", "done", "failed", "queued", "submitted"])])
    response = client.get("/admin/batching/batch/")
    assert response.status_code == 200
    html = response.content.decode()
    assert batch.id in html and "in_progress" in html
    row = html[html.index(batch.id):]
    assert '<td class="field-total">5</td>' in row
    assert '<td class="field-completed">2</td>' in row
    assert '<td class="field-failed">1</td>' in row
    assert client.get(f"/admin/batching/batch/{batch.id}/change/").status_code == 200


@pytest.mark.redis
def test_batch_endpoints_need_the_infer_scope(gateway, live_tenant) -> None:
    analytics_only = client_for(gateway, live_tenant.analytics.raw)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        analytics_only.files.create(file=("a.jsonl", b'{"x": 1}'), purpose="batch")
    assert caught.value.response.json()["error"]["code"] == "insufficient_scope"
    with pytest.raises(openai.PermissionDeniedError):
        analytics_only.batches.list()
    with pytest.raises(openai.AuthenticationError):
        client_for(gateway, "ask_nope_nope").batches.list()
