"""The embedded PostgreSQL is sized for the semantic cache, once, when its data directory is new."""

from __future__ import annotations

import pytest
from django.db import connection

from asahi_project import embedded


@pytest.mark.parametrize(("ram_gb", "shared"), [(24, "4096MB"), (64, "4096MB"), (6, "1536MB"),
                                              (0.25, "128MB")])
def test_memory_settings_scale_with_ram_and_honour_the_override(monkeypatch, ram_gb, shared,
                                                                ) -> None:
    """A quarter of RAM, 128 MB to 4 GB: the pages a million-entry scope's lookups touch (2.8 GB
    measured) stay in shared_buffers on a 24 GB machine."""
    pages = int(ram_gb * 2**30) // 4096
    monkeypatch.setattr(embedded.os, "sysconf",
                        lambda name: 4096 if name == "SC_PAGE_SIZE" else pages)
    monkeypatch.delenv("ASAHI_PG_SHARED_BUFFERS", raising=False)
    values = embedded._memory_settings()
    assert values["shared_buffers"] == shared
    assert set(values) == {"shared_buffers", "effective_cache_size", "maintenance_work_mem",
                           "work_mem"}
    monkeypatch.setenv("ASAHI_PG_SHARED_BUFFERS", "256MB")
    assert embedded._memory_settings()["shared_buffers"] == "256MB"


@pytest.mark.django_db
def test_embedded_server_runs_with_the_tuned_settings() -> None:
    pgdata = embedded.DATA_DIR / "pg"
    if str(connection.settings_dict["HOST"]) != str(pgdata):
        pytest.skip("DATABASE_URL points at an external server")
    conf = (pgdata / "postgresql.conf").read_text()
    assert conf.count(embedded._TUNING_MARK) == 1  # written once, not on every start
    with connection.cursor() as cur:
        cur.execute("SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'")
        shared_bytes = cur.fetchone()[0]
    assert shared_bytes > 128 * 2**20  # above initdb's default: the restart took effect


def test_stop_waits_until_the_server_has_exited(tmp_path) -> None:
    """`./asahi down && ./asahi up` must not find a server still shutting down."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    slow_to_stop = ("import signal, sys, time\n"
                    "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(0.5), sys.exit(0)))\n"
                    "print('ready', flush=True)\n"
                    "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", slow_to_stop], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    reaper = threading.Thread(target=proc.wait)  # a real server is not our child: init reaps it
    reaper.start()
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{proc.pid}\n/some/data/dir\n")
    embedded._stop(pid_file, signal.SIGTERM, timeout_s=30)
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    reaper.join(5)
    embedded._stop(tmp_path / "missing.pid", signal.SIGTERM)  # nothing to stop: no error
