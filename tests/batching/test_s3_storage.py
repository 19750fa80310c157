"""Batch files on an S3-compatible store (ASAHI_BATCH_S3_BUCKET): django-storages' S3 backend
against moto's S3 server over HTTP, through the batching services that upload, store and read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from batching.choices import FilePurpose
from batching.models import BatchFile
from batching.services import file_read, file_store, file_upload
from governance.selectors import auth_context_for_key
from tests.conftest import make_tenant

pytestmark = [pytest.mark.django_db]
BUCKET = "asahi-batches"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    # The same options settings.py builds from ASAHI_BATCH_S3_* (endpoint, bucket, prefix).
    storages = {**settings.STORAGES, "batches": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": endpoint, "region_name": "us-east-1",
                    "location": "batches"}}}
    try:
        with override_settings(STORAGES=storages):
            yield client
    finally:
        server.stop()


def test_batch_files_round_trip_through_an_s3_compatible_store(s3: Any) -> None:
    tenant = make_tenant("s3 co")
    data = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    auth = auth_context_for_key(key_id=tenant.infer.key.pk)
    assert auth is not None
    up = file_upload(auth=auth, purpose=FilePurpose.BATCH, filename="in.jsonl",
                     data=data)
    stored = s3.get_object(Bucket=BUCKET, Key=f"batches/{up.storage_name}")["Body"].read()
    assert stored == data and file_read(BatchFile.objects.get(pk=up.pk)) == data

    # An interrupted finalization writes its output file again under the same name: replaced.
    name = f"{tenant.org.id}/batch_x/output.jsonl"
    first = file_store(organization_id=tenant.org.id, purpose=FilePurpose.BATCH_OUTPUT,
                       filename="out.jsonl", data=b"first\n", name=name)
    second = file_store(organization_id=tenant.org.id, purpose=FilePurpose.BATCH_OUTPUT,
                        filename="out.jsonl", data=b"second\n", name=name)
    assert first.storage_name == second.storage_name == name
    assert file_read(second) == b"second\n"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(keys) == sorted([f"batches/{up.storage_name}", f"batches/{name}"])
