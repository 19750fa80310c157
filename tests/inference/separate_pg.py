"""A PostgreSQL server of its own (pgserver, in a temporary directory) that a test may stop.

Stopping the suite's database would break every other test; this one holds a copy of the test
database (pg_dump | psql: schema and the rows the test made), so a server started on it sees
the same organizations, keys and catalogue.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings


class SeparatePostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.server: Any = None

    def start(self) -> None:
        import pgserver

        self.server = pgserver.get_server(str(self.pgdata), cleanup_mode=None)
        self.server.psql("SET client_min_messages = warning; "
                         "CREATE EXTENSION IF NOT EXISTS vector;")

    @property
    def socket_dir(self) -> str:
        return str(self.server.get_postmaster_info().socket_dir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def copy_from_test_database(self) -> None:
        """The suite's test database (schema and rows), into this server's `postgres` database."""
        from pgserver._commands import POSTGRES_BIN_PATH

        db = settings.DATABASES["default"]
        dump = subprocess.run(  # noqa: S603 - fixed argv, binaries from the pgserver wheel
            [str(POSTGRES_BIN_PATH / "pg_dump"), "--no-owner", "--no-privileges",
             "-h", str(db["HOST"]), "-U", str(db["USER"]), str(db["NAME"])],
            capture_output=True)
        assert dump.returncode == 0, dump.stderr.decode()
        load = subprocess.run(  # noqa: S603
            [str(POSTGRES_BIN_PATH / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h",
             self.socket_dir, "-U", "postgres", "postgres"],
            input=dump.stdout, capture_output=True)
        assert load.returncode == 0, load.stderr.decode()

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in an outage."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def restart(self) -> None:
        from pgserver.postgres_server import PostgresServer

        with PostgresServer._lock:
            self.server.ensure_postgres_running()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(sql)  # type: ignore[arg-type]
            return cur.fetchall()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # already stopped
            self.stop()
        shutil.rmtree(self.pgdata, ignore_errors=True)
