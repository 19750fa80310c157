import pytest
from django.test import Client

from governance.keys import hash_key
from governance.models import ApiKey, AuditEvent

pytestmark = pytest.mark.django_db


def test_admin_key_reads_its_audit_log(client: Client, tenant) -> None:
    response = client.get("/governance/audit", **tenant.headers("admin"))
    assert response.status_code == 200
    body = response.json()
    actions = {row["action"] for row in body["results"]}
    assert {"organization_created", "api_key_created"} <= actions
    assert all(row["org_id"] == str(tenant.org.id) for row in body["results"])
    assert response["X-Request-ID"].startswith("req_")


def test_wrong_key_gets_401_in_error_shape_and_is_audited(client: Client, tenant) -> None:
    bad = tenant.admin.raw[:-1] + ("A" if tenant.admin.raw[-1] != "A" else "B")
    before = AuditEvent.objects.filter(action="auth_failure").count()
    response = client.get("/governance/audit", HTTP_AUTHORIZATION=f"Bearer {bad}")
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert body["request_id"] == response["X-Request-ID"]
    assert AuditEvent.objects.filter(action="auth_failure").count() == before + 1
    failure = AuditEvent.objects.filter(action="auth_failure").first()
    assert bad not in str(failure.details)  # the presented secret is never stored


def test_missing_and_malformed_authorization(client: Client, tenant) -> None:
    assert client.get("/governance/audit").status_code == 401
    response = client.get("/governance/audit", HTTP_AUTHORIZATION="Token abc")
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]["message"]


def test_database_holds_no_raw_key(tenant) -> None:
    raw = tenant.admin.raw
    stored = ApiKey.objects.get(prefix=tenant.admin.key.prefix)
    assert stored.key_hash == hash_key(raw)
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT * FROM governance_apikey")
        rows = cur.fetchall()
        cur.execute("SELECT details::text FROM governance_auditevent")
        audit = cur.fetchall()
    secret = raw.split("_", 2)[2]
    assert not any(secret in str(col) for row in rows for col in row)
    assert not any(secret in row[0] for row in audit)


@pytest.mark.parametrize(
    ("path", "scope", "expected"),
    [
        ("/governance/audit", "admin", 200),
        ("/governance/audit", "infer", 403),
        ("/governance/audit", "analytics", 403),
        ("/governance/usage", "admin", 200),
        ("/governance/usage", "infer", 403),
    ],
)
def test_scope_matrix(client: Client, tenant, path: str, scope: str, expected: int) -> None:
    response = client.get(path, **tenant.headers(scope))
    assert response.status_code == expected
    if expected == 403:
        assert response.json()["error"]["code"] == "insufficient_scope"


def test_revoked_and_expired_keys_get_401(client: Client, tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from governance.services import api_key_revoke

    api_key_revoke(prefix=tenant.admin.key.prefix, actor="test")
    response = client.get("/governance/audit", **tenant.headers("admin"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_api_key"

    ApiKey.objects.filter(pk=tenant.analytics.key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1), scopes=["admin"])
    response = client.get("/governance/audit", **tenant.headers("analytics"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired_api_key"


def test_unknown_route_is_json_404(client: Client) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_incoming_request_id_is_kept(client: Client) -> None:
    response = client.get("/no/such/thing", HTTP_X_REQUEST_ID="client-trace-12345")
    assert response["X-Request-ID"] == "client-trace-12345"
    assert response.json()["request_id"] == "client-trace-12345"


def test_audit_table_is_append_only(tenant) -> None:
    from django.db import DatabaseError, transaction

    event = AuditEvent.objects.first()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
