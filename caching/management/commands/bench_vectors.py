"""Tier-2 vector store benchmark: scoped nearest-neighbour latency and recall at scale.

Loads synthetic clustered unit vectors (generated in numpy, streamed with binary COPY) into
`caching_semanticentry`: one large scope of `--rows` entries plus a 50k scope, an `--edge` scope
(default: the exact-scan limit) and ten 1k scopes. Builds the partial HNSW indexes through the production service
(`scope_indexes_sync`), then for each scope times `caching.bridge.nearest` (the lookup the gateway
runs) and compares its top 1/3 with an exact scan of the same scope.

Two query kinds: `dup` (a cached prompt's vector plus noise: the paraphrase a cache exists for)
and `fresh` (a new point of a random cluster: the hard case for a graph index). Rows and the
benchmark's indexes are deleted afterwards unless --keep.

    python manage.py bench_vectors --rows 1000000
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from caching.bridge import EXACT_SCAN_LIMIT

EMBEDDER = "bench:1"
CHUNK = 50_000
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
COPY_SQL = ("COPY caching_semanticentry (organization_id, model, task_type, embedder, embedding, "
            "prompt, answer, created_at, expires_at, hit_count) FROM STDIN (FORMAT BINARY)")
COPY_HEADER = b"PGCOPY\n\xff\r\n\0" + b"\0" * 8
COPY_TRAILER = b"\xff\xff"
EMBED_PROMPT = "How do I reset my password on the customer portal after it expired?"
CROWD_SEED = 100


@dataclass(frozen=True)
class Scope:
    label: str
    org_id: uuid.UUID
    model: str
    task_type: str
    rows: int
    seed: int


@dataclass
class Measurement:
    latencies_ms: list[float]
    recall1: float
    recall3: float
    checked: int

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        return (f"{_p50_p99(lat)} max={lat[-1]:7.2f}ms "
                f"recall@1={self.recall1:.3f} recall@3={self.recall3:.3f} "
                f"(timed {len(lat)}, checked {self.checked})")


def _p50_p99(latencies_ms: list[float]) -> str:
    lat = sorted(latencies_ms)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return f"p50={statistics.median(lat):7.2f}ms p99={p99:7.2f}ms"


def _copy_dtype(scope: Scope, dim: int) -> np.dtype:
    """One COPY BINARY tuple with fixed-width fields, so a chunk is a single numpy buffer."""
    lengths = {"model": len(scope.model.encode()), "task": len(scope.task_type.encode()),
               "emb": len(EMBEDDER.encode())}
    return np.dtype([
        ("nf", ">i2"),
        ("l_org", ">i4"), ("org", "u1", (16,)),
        ("l_model", ">i4"), ("model", f"S{lengths['model']}"),
        ("l_task", ">i4"), ("task", f"S{lengths['task']}"),
        ("l_emb", ">i4"), ("emb", f"S{lengths['emb']}"),
        ("l_vec", ">i4"), ("vdim", ">i2"), ("vunused", ">i2"), ("vec", ">f4", (dim,)),
        ("l_prompt", ">i4"), ("prompt", "S14"),
        ("l_answer", ">i4"), ("answer", "S3"),
        ("l_created", ">i4"), ("created", ">i8"),
        ("l_expires", ">i4"), ("expires", ">i8"),
        ("l_hits", ">i4"), ("hits", ">i4"),
    ])


def _key_of(scope: Scope) -> str:
    from caching.models import scope_key_of

    return scope_key_of(organization_id=scope.org_id, model=scope.model,
                        task_type=scope.task_type, embedder=EMBEDDER)


def _index_count() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'caching_semanticentry'")
        return int(cur.fetchone()[0])


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Command(BaseCommand):
    help = "Load synthetic vectors, build per-scope HNSW, measure scoped lookup latency and recall."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large scope")
        parser.add_argument("--medium", type=int, default=50_000, help="rows of the medium scope")
        parser.add_argument("--edge", type=int, default=EXACT_SCAN_LIMIT,
                            help="rows of the scope at the exact-scan limit")
        parser.add_argument("--dim", type=int, default=384)
        parser.add_argument("--queries", type=int, default=200, help="timed lookups per kind")
        parser.add_argument("--warmup", type=int, default=20,
                            help="untimed lookups (other queries) first: a server that has run "
                                 "for a while has the graph's hot pages in shared_buffers")
        parser.add_argument("--recall-queries", type=int, default=50,
                            help="of those, how many are checked against an exact scan")
        parser.add_argument("--cluster-size", type=int, default=500,
                            help="mean rows per cluster (clusters = rows / this)")
        parser.add_argument("--noise", type=float, default=0.6,
                            help="row = centroid + noise (relative norm): same-cluster cos ~0.73")
        parser.add_argument("--query-noise", type=float, default=0.3,
                            help="dup query = row + noise (relative norm): cos ~0.96 to the row")
        parser.add_argument("--ef", default="40,80,160", help="ef_search values for HNSW scopes")
        parser.add_argument("--keep", action="store_true", help="keep rows and indexes afterwards")
        parser.add_argument("--with-embedding", action="store_true",
                            help="also time the local embedder on a fresh prompt before each "
                                 "lookup: what the semantic tier adds to a miss")
        parser.add_argument("--reuse", action="store_true",
                            help="measure the rows and indexes a --keep run left (same seeds)")
        parser.add_argument("--query-seed", type=int, default=0,
                            help="another set of fresh queries (dup queries are random anyway), "
                                 "so that --reuse runs do not time pages an earlier run warmed")
        parser.add_argument("--crowd", type=int, default=0,
                            help="after measuring, add this many more scopes, each with its own "
                                 "partial index, and measure again: what many indexes cost the "
                                 "planner and inserts")
        parser.add_argument("--crowd-rows", type=int, default=600,
                            help="rows of each crowd scope (above half the exact-scan limit, so "
                                 "the periodic index sync keeps their indexes)")

    def handle(self, *args: Any, **opts: Any) -> None:
        from caching.models import EMBEDDING_DIM
        from governance.services import organization_create

        if opts["dim"] != EMBEDDING_DIM:
            raise CommandError(f"the column is vector({EMBEDDING_DIM}); --dim must match")
        if opts["rows"] < 1_000:
            raise CommandError("--rows must be >= 1000")
        dim = opts["dim"]
        if opts["reuse"]:
            scopes = self._kept_scopes()
        else:
            orgs = [organization_create(name=f"bench-vec-{i}-{uuid.uuid4().hex[:4]}",
                                        actor="bench") for i in range(3)]
            scopes = [Scope("large", orgs[0].pk, "m-large", "qa", opts["rows"], 1),
                      Scope("medium", orgs[1].pk, "m-medium", "qa", opts["medium"], 2),
                      Scope("edge", orgs[1].pk, "m-medium", "chat", opts["edge"], 3),
                      *[Scope(f"small-{i}", orgs[2].pk, "m-small", f"s{i}", 1_000, 10 + i)
                        for i in range(10)]]
            scopes = [s for s in scopes if s.rows > 0]
        try:
            if not opts["reuse"]:
                self._load(scopes, dim=dim, cluster_size=opts["cluster_size"],
                           noise=opts["noise"])
                self._index()
            efs = [int(x) for x in opts["ef"].split(",")]
            measured = [s for s in scopes
                        if s.label in ("large", "medium", "edge", "small-0", "small-1")]

            def measure_all() -> None:
                for scope in measured:
                    self._measure(scope, queries=opts["queries"],
                                  checked=opts["recall_queries"], noise=opts["noise"],
                                  query_noise=opts["query_noise"],
                                  cluster_size=opts["cluster_size"], efs=efs,
                                  embed=opts["with_embedding"], warmup=opts["warmup"],
                                  query_seed=opts["query_seed"])
                self._time_inserts(scopes[0].org_id, n=opts["queries"], dim=dim)

            measure_all()
            if opts["crowd"]:
                scopes += self._crowd(opts["crowd"], rows=opts["crowd_rows"], dim=dim,
                                      cluster_size=opts["cluster_size"], noise=opts["noise"])
                measure_all()
        finally:
            if not opts["keep"]:
                from caching.services import scope_index_drop

                for s in scopes:
                    scope_index_drop(scope_key=_key_of(s), concurrently=False)
                with connection.cursor() as cur:
                    cur.execute("DELETE FROM caching_semanticentry WHERE embedder = %s", [EMBEDDER])
            # The organizations stay (named bench-vec-*): deleting them cascades through every app.

    def _crowd(self, count: int, *, rows: int, dim: int, cluster_size: int,
               noise: float) -> list[Scope]:
        """`count` more scopes with an index each, built directly (they are below the limit)."""
        from caching.services import scope_index_create, scope_size
        from governance.services import organization_create

        org = organization_create(name=f"bench-vec-crowd-{uuid.uuid4().hex[:4]}", actor="bench")
        crowd = [Scope(f"crowd-{i}", org.pk, "m-crowd", f"c{i}", rows, CROWD_SEED + i)
                 for i in range(count)]
        before = _index_count()
        self._load(crowd, dim=dim, cluster_size=cluster_size, noise=noise)
        t0 = time.perf_counter()
        for scope in crowd:
            found = scope_size(scope_key=_key_of(scope))
            assert found is not None
            scope_index_create(scope=found, concurrently=False)
        after = _index_count()
        self.stdout.write(f"crowd: {count} scopes of {rows} rows, a partial index each, built in "
                          f"{time.perf_counter() - t0:.1f}s; indexes on the table {before} -> "
                          f"{after}. Measuring again:")
        return crowd

    def _time_inserts(self, org_id: uuid.UUID, *, n: int, dim: int) -> None:
        """The gateway's cache write after a miss (off the request path): one row, autocommit.
        Every partial index on the table costs each insert a predicate test."""
        from caching.models import SemanticEntry

        rng = np.random.default_rng(7)
        lat: list[float] = []
        expires = datetime.now(UTC) + timedelta(days=365)
        try:
            for vec in _unit(rng.standard_normal((n, dim))):
                t0 = time.perf_counter()
                SemanticEntry.objects.create(
                    organization_id=org_id, model="m-insert", task_type="qa", embedder=EMBEDDER,
                    embedding=vec.tolist(), prompt="bench insert", answer={},
                    expires_at=expires)
                lat.append((time.perf_counter() - t0) * 1000)
        finally:
            SemanticEntry.objects.filter(model="m-insert", embedder=EMBEDDER).delete()
        self.stdout.write(f"single-row cache write (ORM create, autocommit): {_p50_p99(lat)} "
                          f"({n} rows)")

    @staticmethod
    def _kept_scopes() -> list[Scope]:
        labels = {("m-large", "qa"): ("large", 1), ("m-medium", "qa"): ("medium", 2),
                  ("m-medium", "chat"): ("edge", 3),
                  **{("m-small", f"s{i}"): (f"small-{i}", 10 + i) for i in range(10)}}
        with connection.cursor() as cur:
            cur.execute("SELECT organization_id, model, task_type, count(*) FROM "
                        "caching_semanticentry WHERE embedder = %s GROUP BY 1, 2, 3", [EMBEDDER])
            rows = cur.fetchall()
        for _, m, t, _ in rows:
            if (m, t) not in labels:  # a --crowd scope: m-crowd, c<i>
                labels[(m, t)] = (f"crowd-{t[1:]}", CROWD_SEED + int(t[1:]))
        found = [Scope(labels[(m, t)][0], org, m, t, int(n), labels[(m, t)][1])
                 for org, m, t, n in rows]
        if not found:
            raise CommandError("--reuse: no rows kept by an earlier --keep run")
        return sorted(found, key=lambda s: s.seed)

    @staticmethod
    def _vectors(scope: Scope, *, dim: int, cluster_size: int) -> tuple[np.ndarray, np.random.Generator]:
        rng = np.random.default_rng(scope.seed)
        clusters = max(1, scope.rows // cluster_size)
        return _unit(rng.standard_normal((clusters, dim))), rng

    def _load(self, scopes: list[Scope], *, dim: int, cluster_size: int, noise: float) -> None:
        now_us = int((datetime.now(UTC) - PG_EPOCH).total_seconds() * 1e6)
        t0 = time.perf_counter()
        total = 0
        with connection.cursor() as cur, cur.cursor.copy(COPY_SQL) as copy:
            copy.write(COPY_HEADER)
            for scope in scopes:
                centroids, rng = self._vectors(scope, dim=dim, cluster_size=cluster_size)
                dtype = _copy_dtype(scope, dim)
                for start in range(0, scope.rows, CHUNK):
                    n = min(CHUNK, scope.rows - start)
                    rec = np.zeros(n, dtype=dtype)
                    rec["nf"] = 10
                    rec["l_org"], rec["org"] = 16, np.frombuffer(scope.org_id.bytes, np.uint8)
                    rec["l_model"], rec["model"] = dtype["model"].itemsize, scope.model.encode()
                    rec["l_task"], rec["task"] = dtype["task"].itemsize, scope.task_type.encode()
                    rec["l_emb"], rec["emb"] = dtype["emb"].itemsize, EMBEDDER.encode()
                    rec["l_vec"], rec["vdim"] = 4 + 4 * dim, dim
                    # Row i belongs to cluster i mod C, so a row's cluster is known at query time.
                    ids = np.arange(start, start + n)
                    noisy = rng.standard_normal((n, dim)) * (noise / np.sqrt(dim))
                    rec["vec"] = _unit(centroids[ids % len(centroids)] + noisy)
                    rec["l_prompt"] = 14
                    rec["prompt"] = [f"bench {i:08d}".encode() for i in ids]
                    rec["l_answer"], rec["answer"] = 3, b"\x01{}"  # jsonb binary: version 1
                    rec["l_created"], rec["created"] = 8, now_us
                    rec["l_expires"], rec["expires"] = 8, now_us + 86_400 * 10**6
                    rec["l_hits"], rec["hits"] = 4, 0
                    copy.write(rec.tobytes())
                    total += n
            copy.write(COPY_TRAILER)
        load_s = time.perf_counter() - t0
        with connection.cursor() as cur:
            cur.execute("ANALYZE caching_semanticentry")
        self.stdout.write(f"loaded {total} rows in {load_s:.1f}s ({total / load_s:,.0f} rows/s, "
                          f"binary COPY; scope_key set by the trigger)")

    def _index(self) -> None:
        from caching.models import SemanticScopeIndex
        from caching.services import HNSW_EF_CONSTRUCTION, HNSW_M, scope_indexes_sync

        t0 = time.perf_counter()
        report = scope_indexes_sync()
        self.stdout.write(f"scope_indexes_sync: {len(report.indexed)} partial HNSW indexes "
                          f"(m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}) in "
                          f"{time.perf_counter() - t0:.1f}s")
        for rec in SemanticScopeIndex.objects.filter(embedder=EMBEDDER):
            with connection.cursor() as cur:
                cur.execute("SELECT pg_size_pretty(pg_relation_size(%s::regclass))",
                            [rec.index_name])
                size = cur.fetchone()[0]
            self.stdout.write(f"  {rec.index_name}: {rec.rows_at_creation} rows, "
                              f"built in {rec.build_seconds:.1f}s, {size}")

    @staticmethod
    def _exact(scope: Scope, vec: str, k: int) -> list[int]:
        key = _key_of(scope)
        with connection.cursor() as cur:
            cur.execute("SET enable_indexscan = off")
            cur.execute("SELECT id FROM caching_semanticentry WHERE scope_key = %s "
                        "ORDER BY embedding <=> %s::vector LIMIT %s", [key, vec, k])
            ids = [r[0] for r in cur.fetchall()]
            cur.execute("RESET enable_indexscan")
        return ids

    def _queries(self, scope: Scope, *, kind: str, n: int, dim: int, noise: float, salt: int = 0,
                 query_noise: float, cluster_size: int, query_seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(1000 + scope.seed + 7919 * salt + 104_729 * query_seed)
        if kind == "dup":
            with connection.cursor() as cur:
                cur.execute("SELECT embedding::text FROM caching_semanticentry WHERE "
                            "organization_id = %s AND model = %s AND task_type = %s "
                            "ORDER BY random() LIMIT %s",
                            [scope.org_id, scope.model, scope.task_type, n])
                seeds = [np.array([float(x) for x in r[0].strip("[]").split(",")]) for r in cur]
            return [_unit(s + rng.standard_normal(dim) * (query_noise / np.sqrt(dim)))
                    for s in seeds]
        centroids, _ = self._vectors(scope, dim=dim, cluster_size=cluster_size)
        picks = rng.integers(0, len(centroids), n)
        return [_unit(centroids[c] + rng.standard_normal(dim) * (noise / np.sqrt(dim)))
                for c in picks]

    def _measure(self, scope: Scope, *, queries: int, checked: int, noise: float,
                 query_noise: float, cluster_size: int, efs: list[int],
                 embed: bool = False, warmup: int = 20, query_seed: int = 0) -> None:
        from caching.bridge import _vector_literal, nearest
        from caching.semantic.embedders import get_local_embedder

        embedder = get_local_embedder() if embed else None
        for _ in range(20 if embedder is not None else 0):
            embedder.embed([EMBED_PROMPT])  # type: ignore[union-attr]
        from caching.models import EMBEDDING_DIM, SemanticScopeIndex

        key = _key_of(scope)
        indexed = SemanticScopeIndex.objects.filter(scope_key=key).exists()
        dim = EMBEDDING_DIM
        for kind in ("dup", "fresh"):
            warm_qs = self._queries(scope, kind=kind, n=warmup, dim=dim, noise=noise, salt=1,
                                    query_noise=query_noise, cluster_size=cluster_size,
                                    query_seed=query_seed)
            qs = self._queries(scope, kind=kind, n=queries, dim=dim, noise=noise,
                               query_noise=query_noise, cluster_size=cluster_size,
                               query_seed=query_seed)
            truths = [self._exact(scope, _vector_literal(q), 3) for q in qs[:checked]]
            for ef in efs if indexed else [0]:
                def lookup(q: np.ndarray, ef: int = ef) -> list[Any]:
                    return nearest(org_id=scope.org_id, model=scope.model,
                                   task_type=scope.task_type, embedder=EMBEDDER, vector=q, k=3,
                                   **({"ef_search": ef} if ef else {}))

                # Warm the connection and the index pages with queries that are not timed.
                for q in warm_qs:
                    lookup(q)
                lat: list[float] = []
                with_embed: list[float] = []
                r1 = r3 = 0.0
                for i, q in enumerate(qs):
                    t_embed = time.perf_counter()
                    if embedder is not None:
                        # A new prompt each time (no tokenizer or cache effects); the lookup
                        # then uses the synthetic query so that recall stays measurable.
                        embedder.embed([f"{EMBED_PROMPT} (variant {i})"])
                    t0 = time.perf_counter()
                    got = [g[0] for g in lookup(q)]
                    lat.append((time.perf_counter() - t0) * 1000)
                    with_embed.append((time.perf_counter() - t_embed) * 1000)
                    if i < len(truths):
                        r1 += float(bool(got) and got[0] == truths[i][0])
                        r3 += len(set(got) & set(truths[i])) / len(truths[i])
                m = Measurement(latencies_ms=lat, recall1=r1 / len(truths),
                                recall3=r3 / len(truths), checked=len(truths))
                path = f"HNSW ef={ef}" if indexed else "exact scan"
                self.stdout.write(f"scope {scope.label:8} rows={scope.rows:>8} {kind:5} "
                                  f"{path:13} {m.line()}")
                if embedder is not None:
                    self.stdout.write(f"{'':39}embed+lookup {_p50_p99(with_embed)} "
                                      f"({embedder.runtime}, {embedder.version})")
        if indexed:
            self._explain(scope, key)

    def _explain(self, scope: Scope, key: str) -> None:
        from django.db import transaction

        vec = "[" + ",".join(["0.05"] * 384) + "]"
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT set_config('enable_sort', 'off', true), "
                        "set_config('enable_seqscan', 'off', true)")
            cur.execute(f"EXPLAIN SELECT id, embedding <=> %s::vector AS distance FROM "  # noqa: S608
                        f"caching_semanticentry WHERE scope_key = '{key}' AND organization_id = "
                        f"%s AND expires_at > now() ORDER BY distance LIMIT 3", [vec, scope.org_id])
            plan = " / ".join(r[0].strip() for r in cur.fetchall()[:2])
        self.stdout.write(f"  plan ({scope.label}): {plan[:160]}")
