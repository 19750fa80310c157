"""Tier-2 vector store benchmark: scoped nearest-neighbour latency and recall on pgvector HNSW.

Loads synthetic clustered vectors (cluster centroid + noise, L2-normalised) into
`caching_semanticentry` with INSERT ... SELECT generate_series (no client round trips), spread over
scopes of very different sizes, rebuilds the HNSW index, then for each scope times
`caching.bridge.nearest` (the exact lookup the gateway runs) and compares its top 1/3 with an exact
scan of the same scope. Rows are deleted afterwards unless --keep.

    python manage.py bench_vectors --rows 200000 --dim 384
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

EMBEDDER = "bench:1"
CREATE_INDEX = ("CREATE INDEX semantic_hnsw ON caching_semanticentry USING hnsw "
                "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)")


@dataclass(frozen=True)
class Scope:
    label: str
    org_id: uuid.UUID
    model: str
    task_type: str
    rows: int


def _vector_sql(dim: int, clusters: int, noise: float) -> str:
    """SQL for one normalised vector near centroid `g.c` (centroids live in a temp table)."""
    template = ("(SELECT array_agg(x / n ORDER BY i)::vector FROM (SELECT i, x, "
                "sqrt(sum(x * x) OVER ()) AS n FROM (SELECT i, c.v[i] + {noise} * (random() - 0.5) "
                "AS x FROM generate_series(1, {dim}) i) a) b)")
    return template.format(noise=float(noise), dim=int(dim))


class Command(BaseCommand):
    help = "Load synthetic vectors, build HNSW, measure scoped lookup latency and recall."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rows", type=int, default=200_000)
        parser.add_argument("--dim", type=int, default=384)
        parser.add_argument("--queries", type=int, default=50)
        parser.add_argument("--clusters", type=int, default=2_000)
        parser.add_argument("--noise", type=float, default=0.08)
        parser.add_argument("--keep", action="store_true", help="keep the rows afterwards")

    def handle(self, *args: Any, **opts: Any) -> None:
        from caching.models import EMBEDDING_DIM
        from governance.services import organization_create

        if opts["dim"] != EMBEDDING_DIM:
            raise CommandError(f"the column is vector({EMBEDDING_DIM}); --dim must match")
        rows, dim = opts["rows"], opts["dim"]
        orgs = [organization_create(name=f"bench-vec-{i}-{uuid.uuid4().hex[:4]}", actor="bench")
                for i in range(4)]
        small = [Scope(f"small-{i}", orgs[2].pk, "m-small", f"s{i}", 1_000) for i in range(10)]
        scopes = [Scope("large", orgs[0].pk, "m-large", "qa", rows // 2),
                  Scope("medium", orgs[1].pk, "m-medium", "qa", rows // 10), *small]
        filler = rows - sum(s.rows for s in scopes)
        if filler < 0:
            raise CommandError("--rows too small for the scope layout (needs >= 20000)")
        scopes.append(Scope("filler", orgs[3].pk, "m-filler", "qa", filler))
        try:
            self._load(scopes, dim=dim, clusters=opts["clusters"], noise=opts["noise"])
            measured = [s for s in scopes if s.label in ("large", "medium", "small-0", "small-1")]
            for scope in measured:
                self._measure(scope, queries=opts["queries"], noise=opts["noise"])
        finally:
            if not opts["keep"]:
                with connection.cursor() as cur:
                    cur.execute("DELETE FROM caching_semanticentry WHERE embedder = %s", [EMBEDDER])
            # The organizations stay (named bench-vec-*): deleting them cascades through every app.
            with connection.cursor() as cur:
                cur.execute(CREATE_INDEX.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))

    def _load(self, scopes: list[Scope], *, dim: int, clusters: int, noise: float) -> None:
        with connection.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '4GB'")
            cur.execute("SET max_parallel_maintenance_workers = 2")
            cur.execute("DROP TABLE IF EXISTS bench_centroids")
            # Unit centroids; each scope draws from its own slice so scopes are not copies.
            cur.execute(f"CREATE TEMP TABLE bench_centroids AS SELECT g AS id, (SELECT "  # noqa: S608
                        f"array_agg(x / n ORDER BY i) FROM (SELECT i, x, sqrt(sum(x*x) OVER ()) n "
                        f"FROM (SELECT i, random() - 0.5 + 0 * g AS x FROM generate_series(1, "
                        f"{dim}) i) a) b) AS v FROM generate_series(0, {clusters - 1}) g")
            cur.execute("DROP INDEX IF EXISTS semantic_hnsw")
            t0 = time.perf_counter()
            for n, scope in enumerate(scopes):
                cur.execute(
                    f"INSERT INTO caching_semanticentry (organization_id, model, task_type, "  # noqa: S608
                    f"embedder, embedding, prompt, answer, created_at, expires_at, hit_count) "
                    f"SELECT %s, %s, %s, %s, {_vector_sql(dim, clusters, noise)}, 'bench ' || g, "
                    f"'{{}}'::jsonb, now(), now() + interval '1 day', 0 FROM generate_series(1, "
                    f"%s) g JOIN bench_centroids c ON c.id = (g * 7919 + {n * 131}) %% {clusters}",
                    [scope.org_id, scope.model, scope.task_type, EMBEDDER, scope.rows])
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            cur.execute(CREATE_INDEX)
            index_s = time.perf_counter() - t0
            cur.execute("ANALYZE caching_semanticentry")
        total = sum(s.rows for s in scopes)
        self.stdout.write(f"loaded {total} rows in {load_s:.1f}s; HNSW (m=16, ef_construction=64) "
                          f"built in {index_s:.1f}s")

    def _exact(self, scope: Scope, vec: str, k: int) -> list[int]:
        with connection.cursor() as cur:
            cur.execute("SET enable_indexscan = off")
            cur.execute("SELECT id FROM caching_semanticentry WHERE organization_id = %s AND "
                        "model = %s AND task_type = %s AND embedder = %s ORDER BY embedding <=> "
                        "%s::vector LIMIT %s",
                        [scope.org_id, scope.model, scope.task_type, EMBEDDER, vec, k])
            ids = [r[0] for r in cur.fetchall()]
            cur.execute("SET enable_indexscan = on")
        return ids

    def _measure(self, scope: Scope, *, queries: int, noise: float) -> None:
        import numpy as np

        from caching.bridge import EXACT_SCAN_LIMIT, nearest

        with connection.cursor() as cur:
            cur.execute("SELECT embedding::text FROM caching_semanticentry WHERE organization_id = "
                        "%s AND model = %s AND task_type = %s ORDER BY random() LIMIT %s",
                        [scope.org_id, scope.model, scope.task_type, queries])
            seeds = [np.array([float(x) for x in r[0].strip("[]").split(",")]) for r in cur]
        rng = np.random.default_rng(1)
        latencies: list[float] = []
        r1 = r3 = 0.0
        for base in seeds:
            q = base + rng.normal(0, noise / 4, base.shape)  # a near-duplicate query
            q /= np.linalg.norm(q)
            t0 = time.perf_counter()
            got = nearest(org_id=scope.org_id, model=scope.model, task_type=scope.task_type,
                          embedder=EMBEDDER, vector=q, k=3)
            latencies.append((time.perf_counter() - t0) * 1000)
            truth = self._exact(scope, "[" + ",".join(f"{x:.6f}" for x in q) + "]", 3)
            ids = [g[0] for g in got]
            r1 += float(bool(ids) and ids[0] == truth[0])
            r3 += len(set(ids) & set(truth)) / len(truth)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        path = "exact scan" if scope.rows <= EXACT_SCAN_LIMIT else "HNSW ef_search=200"
        self.stdout.write(
            f"scope {scope.label:8} rows={scope.rows:>8} path={path:19} "
            f"p50={statistics.median(latencies):7.2f}ms p99={p99:7.2f}ms "
            f"recall@1={r1 / len(seeds):.3f} recall@3={r3 / len(seeds):.3f} (n={len(seeds)})")
