"""Scoped vector layout: scope_key (Python and trigger agree), per-scope partial HNSW indexes built
and dropped by the sync service, and `nearest` confined to its scope with the exact neighbour."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from asahi_project.errors import InvalidRequest
from caching import bridge
from caching.models import EMBEDDING_DIM, SemanticEntry, SemanticScopeIndex, scope_key_of
from caching.services import (
    GRAPH_DDL_LOCK,
    graph_options,
    index_build_memory_mb,
    large_scopes,
    parallel_build_safe,
    scope_index_create,
    scope_index_drop,
    scope_index_name,
    scope_indexes_sync,
    scope_size,
)
from caching.tasks import index_scope
from governance.services import organization_create

EMB = "test-embedder:1"


def _unit(x: np.ndarray) -> list[float]:
    return [float(v) for v in x / np.linalg.norm(x)]


def _add(org_id: uuid.UUID, model: str, task: str, vectors: np.ndarray, *,
         expired: bool = False) -> list[int]:
    when = timezone.now() + timedelta(hours=-1 if expired else 1)
    rows = SemanticEntry.objects.bulk_create([
        SemanticEntry(organization_id=org_id, model=model, task_type=task, embedder=EMB,
                      embedding=_unit(v), prompt=f"p{i}", answer={"i": i}, expires_at=when)
        for i, v in enumerate(vectors)])
    return [r.pk for r in rows]


@dataclass
class _Scope:
    org_id: uuid.UUID
    rows: np.ndarray
    ids: list[int]
    key: str


def _scope(name: str, *, seed: int, n: int) -> _Scope:
    """An organization with one (m, qa) scope of n random rows."""
    org = organization_create(name=name, actor="test")
    rows = np.random.default_rng(seed).standard_normal((n, EMBEDDING_DIM))
    ids = _add(org.pk, "m", "qa", rows)
    return _Scope(org.pk, rows, ids,
                  scope_key_of(organization_id=org.pk, model="m", task_type="qa", embedder=EMB))


def _index_state(name: str) -> tuple[bool, str] | None:
    with connection.cursor() as cur:
        cur.execute("SELECT i.indisvalid, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s", [name])
        row = cur.fetchone()
    return None if row is None else (bool(row[0]), str(row[1]))


def _index_options(name: str) -> frozenset[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [name])
        return frozenset(cur.fetchone()[0] or ())


def _index_scans(name: str, *, above: int = -1) -> int:
    """idx_scan of an index; waits (briefly) for it to exceed `above`, because a backend's
    statistics reach the shared view only when it flushes them (at latest when it exits)."""
    deadline = time.monotonic() + 3
    while True:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush(), pg_stat_clear_snapshot()")
            cur.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s",
                        [name])
            row = cur.fetchone()
        scans = int(row[0]) if row else 0
        if scans > above or time.monotonic() > deadline:
            return scans
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _fresh_index_cache() -> Iterator[None]:
    bridge._indexed_scopes.clear()  # per-process memo of "scope has an index"
    yield
    bridge._indexed_scopes.clear()


# --- pure logic -----------------------------------------------------------------------------------

def test_scope_key_is_16_hex_and_separates_every_scope_field() -> None:
    org = uuid.uuid4()
    base = scope_key_of(organization_id=org, model="m", task_type="qa", embedder=EMB)
    assert len(base) == 16 and int(base, 16) >= 0
    assert base == scope_key_of(organization_id=str(org), model="m", task_type="qa", embedder=EMB)
    variants = {
        scope_key_of(organization_id=uuid.uuid4(), model="m", task_type="qa", embedder=EMB),
        scope_key_of(organization_id=org, model="m2", task_type="qa", embedder=EMB),
        scope_key_of(organization_id=org, model="m", task_type="chat", embedder=EMB),
        scope_key_of(organization_id=org, model="m", task_type="qa", embedder="other:2"),
    }
    assert base not in variants and len(variants) == 4


def test_scope_index_name_refuses_anything_but_a_scope_key() -> None:
    assert scope_index_name("0123456789abcdef") == "semantic_hnsw_0123456789abcdef"
    for bad in ("0123456789ABCDEF", "x' OR 1=1 --....", "0123"):
        with pytest.raises(InvalidRequest):
            scope_index_name(bad)


# --- against the database -----------------------------------------------------------------------

def test_index_build_memory_follows_the_scope_size() -> None:
    # pgvector reserves all of maintenance_work_mem for a build: small scopes must not ask for GBs.
    assert index_build_memory_mb(600) == 64
    assert index_build_memory_mb(100_000) == 391
    assert index_build_memory_mb(1_000_000) == 3907  # ~2.3 GB needed for 1M x 384d
    assert index_build_memory_mb(5_000_000) == 4096


def test_parallel_graph_builds_only_where_pgvector_fixed_their_locking() -> None:
    assert not parallel_build_safe("0.6.2") and not parallel_build_safe("0.7.3")
    assert parallel_build_safe("0.7.4") and parallel_build_safe("0.8.1")
    assert parallel_build_safe("0.10.0") and not parallel_build_safe("")


@pytest.mark.django_db
def test_trigger_sets_the_same_scope_key_on_every_insert_path() -> None:
    org = organization_create(name="scope-trigger", actor="test")
    vec = _unit(np.ones(EMBEDDING_DIM))
    orm = SemanticEntry.objects.create(organization_id=org.pk, model="m", task_type="qa",
                                       embedder=EMB, embedding=vec, prompt="a", answer={},
                                       expires_at=timezone.now() + timedelta(hours=1))
    with connection.cursor() as cur:  # raw insert without scope_key: the trigger fills it
        cur.execute("INSERT INTO caching_semanticentry (organization_id, model, task_type, "
                    "embedder, embedding, prompt, answer, created_at, expires_at, hit_count) "
                    "VALUES (%s, 'm', 'qa', %s, %s::vector, 'b', '{}', now(), now(), 0) "
                    "RETURNING id", [org.pk, EMB, str(vec)])
        raw_id = cur.fetchone()[0]
    expected = scope_key_of(organization_id=org.pk, model="m", task_type="qa", embedder=EMB)
    orm.refresh_from_db()
    assert orm.scope_key == expected
    assert SemanticEntry.objects.get(pk=raw_id).scope_key == expected
    SemanticEntry.objects.filter(pk=raw_id).update(model="m2")  # a scope change re-keys the row
    assert SemanticEntry.objects.get(pk=raw_id).scope_key == scope_key_of(
        organization_id=org.pk, model="m2", task_type="qa", embedder=EMB)


@pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY cannot run in a transaction
def test_large_scope_gets_a_partial_index_and_lookups_stay_in_scope() -> None:
    rng = np.random.default_rng(7)
    org = organization_create(name="scope-big", actor="test")
    other = organization_create(name="scope-other", actor="test")
    big = rng.standard_normal((60, EMBEDDING_DIM))
    big_ids = _add(org.pk, "m", "qa", big)
    # Another tenant holds exact copies of the big scope's vectors: they must never come back.
    _add(other.pk, "m", "qa", big[:5])
    small_ids = _add(org.pk, "m", "chat", rng.standard_normal((8, EMBEDDING_DIM)))

    report = scope_indexes_sync(threshold=50)

    big_key = scope_key_of(organization_id=org.pk, model="m", task_type="qa", embedder=EMB)
    small_key = scope_key_of(organization_id=org.pk, model="m", task_type="chat", embedder=EMB)
    name = scope_index_name(big_key)
    assert report.indexed == [name]
    state = _index_state(name)
    assert state is not None and state[0] and big_key in state[1]
    assert _index_state(scope_index_name(small_key)) is None
    record = SemanticScopeIndex.objects.get(scope_key=big_key)
    assert record.rows_at_creation == 60 and record.organization_id == org.pk

    before = _index_scans(name)
    query = big[17] + rng.standard_normal(EMBEDDING_DIM) * 0.02
    got = bridge.nearest(org_id=org.pk, model="m", task_type="qa", embedder=EMB, vector=query)
    assert _index_scans(name, above=before) > before  # the lookup walked the partial index
    assert got[0][0] == big_ids[17] and got[0][3] > 0.99
    assert len(got) == bridge.NEIGHBOURS and {g[0] for g in got} <= set(big_ids)

    # The small scope is scanned exactly, and only its own rows come back.
    got_small = bridge.nearest(org_id=org.pk, model="m", task_type="chat", embedder=EMB,
                               vector=big[17])
    assert got_small and {g[0] for g in got_small} <= set(small_ids)


@pytest.mark.django_db(transaction=True)
def test_indexed_lookup_settings_lapse_with_the_lookup() -> None:
    """The HNSW path turns sorts and seq scans off for its own query only: nothing leaks to the
    connection's next query, whether or not the lookup ran inside a transaction."""
    from django.db import connection, transaction

    rng = np.random.default_rng(5)
    org = organization_create(name="scope-settings", actor="test")
    rows = rng.standard_normal((30, EMBEDDING_DIM))
    ids = _add(org.pk, "m", "qa", rows)
    scope_indexes_sync(threshold=20)

    def current() -> tuple[str, str, str]:
        with connection.cursor() as cur:
            cur.execute("SELECT current_setting('enable_sort'), current_setting('enable_seqscan'), "
                        "current_setting('plan_cache_mode')")
            return cur.fetchone()

    defaults = ("on", "on", "auto")
    got = bridge.nearest(org_id=org.pk, model="m", task_type="qa", embedder=EMB, vector=rows[4])
    assert got[0][0] == ids[4] and current() == defaults
    with transaction.atomic():
        got = bridge.nearest(org_id=org.pk, model="m", task_type="qa", embedder=EMB,
                             vector=rows[9])
        assert got[0][0] == ids[9] and current() == defaults


@pytest.fixture
def persistent_connection(monkeypatch) -> None:
    """Production keeps connections (DB_CONN_MAX_AGE); the test settings close them after use."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    monkeypatch.setattr(bridge, "RELEASE_SECONDS", 600.0)
    monkeypatch.setattr(bridge._released, "at", time.monotonic(), raising=False)


def _prepared_plans(scope_key: str) -> list[tuple[str, int, int]]:
    with connection.cursor() as cur:  # the session's own statements: same connection as lookups
        cur.execute("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE name LIKE %s ORDER BY name", [f"asahi_nn_{scope_key}_%"])
        return [(r[0], int(r[1]), int(r[2])) for r in cur.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_lookups_reuse_one_generic_plan_per_scope_and_path(persistent_connection: None,
                                                           ) -> None:
    """Planning cost grows with the number of partial indexes on the table (1,000 scope graphs
    added 11-14 ms a lookup), so each scope's lookup is prepared once and its plan reused by
    later lookups on the same (persistent) connection."""
    scope = _scope("scope-prepared", seed=8, n=30)
    ids, key = scope.ids, scope.key

    def look(i: int) -> int:
        return bridge.nearest(org_id=scope.org_id, model="m", task_type="qa", embedder=EMB,
                              vector=scope.rows[i])[0][0]

    assert [look(i) for i in (1, 2, 3)] == [ids[1], ids[2], ids[3]]  # exact path
    assert _prepared_plans(key) == [(f"asahi_nn_{key}_x3", 3, 0)]

    scope_indexes_sync(threshold=20)
    bridge._indexed_scopes.clear()
    scans = _index_scans(scope_index_name(key))
    assert [look(i) for i in (4, 5)] == [ids[4], ids[5]]  # indexed path: its own statement
    assert _index_scans(scope_index_name(key), above=scans) >= scans + 2
    assert _prepared_plans(key) == [(f"asahi_nn_{key}_h3", 2, 0), (f"asahi_nn_{key}_x3", 3, 0)]

    # The bookkeeping is per connection and a statement outlives a rollback; lost bookkeeping
    # (the statement exists, the process does not know) heals on the next lookup.
    bridge._prepared.clear()
    assert look(6) == ids[6]
    assert _prepared_plans(key)[0] == (f"asahi_nn_{key}_h3", 3, 0)


@pytest.mark.django_db(transaction=True)
def test_expired_rows_are_not_returned_by_the_indexed_path() -> None:
    rng = np.random.default_rng(11)
    org = organization_create(name="scope-expiry", actor="test")
    live = rng.standard_normal((30, EMBEDDING_DIM))
    live_ids = _add(org.pk, "m", "qa", live)
    _add(org.pk, "m", "qa", live[:10], expired=True)  # exact copies, but expired
    scope_indexes_sync(threshold=20)
    got = bridge.nearest(org_id=org.pk, model="m", task_type="qa", embedder=EMB, vector=live[3])
    assert got[0][0] == live_ids[3] and {g[0] for g in got} <= set(live_ids)


@pytest.mark.django_db(transaction=True)
def test_index_follows_scope_size_and_task_builds_only_large_scopes() -> None:
    scope = _scope("scope-shrink", seed=3, n=40)
    org_id, ids, key = scope.org_id, scope.ids, scope.key
    assert [s.rows for s in large_scopes(threshold=30)] == [40]
    assert index_scope(key) is None  # 40 rows are below the production threshold
    assert scope_size(scope_key=key) == large_scopes(threshold=30)[0]
    assert scope_indexes_sync(threshold=30).indexed == [scope_index_name(key)]
    assert scope_indexes_sync(threshold=30).indexed == [scope_index_name(key)]  # idempotent
    assert SemanticScopeIndex.objects.count() == 1

    SemanticEntry.objects.filter(pk__in=ids[:30]).delete()  # 10 left: below half the threshold
    report = scope_indexes_sync(threshold=30)
    assert report.dropped == [scope_index_name(key)] and report.indexed == []
    assert _index_state(scope_index_name(key)) is None
    assert not SemanticScopeIndex.objects.exists()
    # Without its index the scope is scanned exactly again.
    got = bridge.nearest(org_id=org_id, model="m", task_type="qa", embedder=EMB,
                         vector=np.ones(EMBEDDING_DIM))
    assert len(got) == bridge.NEIGHBOURS and {g[0] for g in got} <= set(ids[30:])


@pytest.mark.django_db(transaction=True)
def test_a_graph_built_with_older_options_is_rebuilt_in_place() -> None:
    """An upgrade that changes m or ef_construction must not leave old, lower-recall graphs."""
    scope = _scope("scope-upgrade", seed=4, n=40)
    ids, key = scope.ids, scope.key
    name = scope_index_name(key)
    with connection.cursor() as cur:  # what an older release built: pgvector's defaults
        cur.execute(f'CREATE INDEX "{name}" ON caching_semanticentry USING hnsw '
                    f"(embedding vector_cosine_ops) WHERE scope_key = '{key}'")
        cur.execute(f'CREATE INDEX "{name}_next" ON caching_semanticentry (scope_key)')  # leftover
    assert _index_options(name) == frozenset()

    assert scope_indexes_sync(threshold=30).indexed == [name]
    assert _index_options(name) == graph_options() == {"m=16", "ef_construction=128"}
    assert _index_state(name) == (True, f"((scope_key)::text = '{key}'::text)")
    assert _index_state(f"{name}_next") is None
    assert SemanticScopeIndex.objects.get(scope_key=key).index_name == name
    scans = _index_scans(name)
    got = bridge.nearest(org_id=scope.org_id, model="m", task_type="qa", embedder=EMB,
                         vector=np.ones(EMBEDDING_DIM))
    assert got and {g[0] for g in got} <= set(ids)
    assert _index_scans(name, above=scans) > scans  # the rebuilt graph serves the lookup
    built = SemanticScopeIndex.objects.get(scope_key=key).build_seconds
    scope_indexes_sync(threshold=30)  # current options: nothing is rebuilt
    assert SemanticScopeIndex.objects.get(scope_key=key).build_seconds == built


@pytest.mark.django_db(transaction=True)
def test_graph_ddl_runs_one_at_a_time_on_the_table() -> None:
    """Two concurrent CREATE/DROP INDEX CONCURRENTLY on one table deadlock, so a build or drop
    while another worker holds the graph lock is skipped (the next sync does it)."""
    import psycopg

    scope = _scope("scope-lock", seed=5, n=12)
    other_scope = _scope("scope-lock-2", seed=6, n=12)
    sizes = {s.scope_key: s for s in large_scopes(threshold=10)}
    name = scope_index_name(scope.key)
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [GRAPH_DDL_LOCK])  # "a worker"
        assert scope_index_create(scope=sizes[scope.key]) is None
        assert scope_index_create(scope=sizes[other_scope.key]) is None  # any scope waits
        assert _index_state(name) is None and not SemanticScopeIndex.objects.exists()
        # Unlock before closing: a closed session's locks go only when its backend has exited.
        other.execute("SELECT pg_advisory_unlock(hashtext(%s))", [GRAPH_DDL_LOCK])
    built = scope_index_create(scope=sizes[scope.key])
    assert built is not None and built.index_name == name and _index_state(name) is not None

    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [GRAPH_DDL_LOCK])
        assert scope_index_drop(scope_key=scope.key) is False
        assert _index_state(name) is not None and SemanticScopeIndex.objects.exists()
        other.execute("SELECT pg_advisory_unlock(hashtext(%s))", [GRAPH_DDL_LOCK])
    assert scope_index_drop(scope_key=scope.key) is True
    assert _index_state(name) is None and not SemanticScopeIndex.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_lookups_keep_a_healthy_connection_and_drop_a_broken_one(monkeypatch) -> None:
    """With persistent connections, a lookup does not re-arm Django's health check (a SELECT 1
    before the next query) unless RELEASE_SECONDS passed or the lookup failed."""
    rng = np.random.default_rng(3)
    org = organization_create(name="scope-conn", actor="test")
    rows = rng.standard_normal((5, EMBEDDING_DIM))
    _add(org.pk, "m", "qa", rows)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    monkeypatch.setattr(bridge._released, "at", float("-inf"), raising=False)

    def lookup() -> list:
        return bridge.nearest(org_id=org.pk, model="m", task_type="qa", embedder=EMB,
                              vector=rows[1])

    lookup()  # the first release in this thread is due: it re-arms the check
    assert connection.health_check_done is False
    lookup()
    assert connection.health_check_done is True  # checked once, not re-armed by this lookup
    raw = connection.connection
    lookup()
    assert connection.connection is raw  # the same connection served all of them

    # The server drops this connection (a restart, an idle timeout): the lookup fails, and its
    # release notices the connection is unusable and closes it; the next lookup reconnects.
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [raw.info.backend_pid])
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for a dropped connection
        lookup()
    assert connection.connection is None
    assert lookup()[0][3] > 0.99 and connection.connection is not raw


@pytest.mark.django_db(transaction=True)
def test_lookups_leave_no_statement_behind_when_prepared_lookups_are_off(
        persistent_connection: None, settings) -> None:
    """Behind a transaction-mode pooler a session's statements may land on another server
    connection, so DB_PREPARED_LOOKUPS=false prepares, runs and deallocates in one transaction."""
    settings.DB_PREPARED_LOOKUPS = False
    scope = _scope("scope-unprepared", seed=9, n=30)
    for indexed in (False, True):
        if indexed:
            scope_indexes_sync(threshold=20)
            bridge._indexed_scopes.clear()
        got = [bridge.nearest(org_id=scope.org_id, model="m", task_type="qa", embedder=EMB,
                              vector=scope.rows[i])[0][0] for i in (1, 2)]
        assert got == [scope.ids[1], scope.ids[2]]
        assert _prepared_plans(scope.key) == []


@pytest.mark.django_db(transaction=True)
def test_an_unindexed_scope_past_the_cap_is_scanned_over_its_newest_rows(monkeypatch) -> None:
    """No worker has built the graph yet: the exact scan stays bounded (the newest
    EXACT_SCAN_CAP rows) instead of growing with the scope."""
    monkeypatch.setattr(bridge, "EXACT_SCAN_CAP", 200)
    monkeypatch.setattr(bridge, "INDEX_CHECK_SECONDS", 0.0)
    scope = _scope("capped scan", seed=11, n=600)  # no index: nothing builds it in this test
    assert not SemanticScopeIndex.objects.filter(scope_key=scope.key).exists()
    newest, oldest = len(scope.ids) - 1, 0
    got = bridge.nearest(org_id=scope.org_id, model="m", task_type="qa", embedder=EMB,
                         vector=scope.rows[newest])
    assert got[0][0] == scope.ids[newest] and got[0][3] > 0.999
    got = bridge.nearest(org_id=scope.org_id, model="m", task_type="qa", embedder=EMB,
                         vector=scope.rows[oldest])
    assert scope.ids[oldest] not in {g[0] for g in got}  # beyond the newest 200: not scanned
    assert {g[0] for g in got} <= set(scope.ids[-200:])


@pytest.mark.django_db(transaction=True)
def test_a_scope_switches_to_its_new_index_without_waiting_for_the_indexed_memo(
        monkeypatch) -> None:
    """An unindexed scope is re-checked every UNINDEXED_CHECK_SECONDS, so the graph a worker has
    just built serves the next lookups; an indexed scope keeps the long memo."""
    monkeypatch.setattr(bridge, "INDEX_CHECK_SECONDS", 3600.0)
    monkeypatch.setattr(bridge, "UNINDEXED_CHECK_SECONDS", 0.0)
    scope = _scope("scope-new-index", seed=12, n=40)
    name = scope_index_name(scope.key)

    def look(i: int) -> int:
        return bridge.nearest(org_id=scope.org_id, model="m", task_type="qa", embedder=EMB,
                              vector=scope.rows[i])[0][0]

    assert look(1) == scope.ids[1]  # exact scan; memo: no index
    assert bridge._indexed_scopes[scope.key][0] is False
    scope_indexes_sync(threshold=20)  # what the worker does once the scope is large
    scans = _index_scans(name)
    assert look(2) == scope.ids[2]
    assert bridge._indexed_scopes[scope.key][0] is True
    assert _index_scans(name, above=scans) >= scans + 1  # served by the new graph
    checked_at = bridge._indexed_scopes[scope.key][1]
    assert look(3) == scope.ids[3]
    assert bridge._indexed_scopes[scope.key][1] == checked_at  # indexed: not re-checked
