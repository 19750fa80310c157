from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from governance.models import ApiKey, Organization
from inference.models import ModelEndpoint

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_org() -> None:
    out = run("create_org", "Umbrella")
    org = Organization.objects.get(name="Umbrella")
    assert str(org.id) in out
    with pytest.raises(CommandError, match="already exists"):
        run("create_org", "Umbrella")


def test_issue_key_prints_raw_key_last_and_it_works(client: Client) -> None:
    out = run("issue_key", "--org", "Hooli", "--create-org", "--scopes", "admin,analytics",
              "--expires-days", "7")
    raw = out.strip().splitlines()[-1]
    key = ApiKey.objects.get(organization__name="Hooli")
    assert raw.startswith(key.prefix + "_")
    assert key.scopes == ["admin", "analytics"] and key.expires_at is not None
    assert client.get("/governance/audit", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_issue_key_errors() -> None:
    with pytest.raises(CommandError, match="not found"):
        run("issue_key", "--org", "Nope")
    with pytest.raises(CommandError, match="unknown scope"):
        run("issue_key", "--org", "X", "--create-org", "--scopes", "root")
    assert not Organization.objects.filter(name="X").exists()  # transactional: nothing half-made


def test_revoke_key(client: Client) -> None:
    raw = run("issue_key", "--org", "Pied", "--create-org").strip().splitlines()[-1]
    prefix = ApiKey.objects.get(organization__name="Pied").prefix
    assert "revoked" in run("revoke_key", prefix)
    assert client.get("/governance/audit", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    with pytest.raises(CommandError):
        run("revoke_key", "ask_doesnotexist")


def test_seed_models_is_idempotent() -> None:
    run("seed_models")
    count = ModelEndpoint.objects.count()
    assert count >= 15
    assert "0 created" in run("seed_models")
    assert ModelEndpoint.objects.count() == count
    mini = ModelEndpoint.objects.get(name="gpt-4o-mini")
    assert str(mini.input_price_per_m) == "0.150000"
