"""The ledger's disk spool: where rows wait while PostgreSQL is unreachable.

Local disk, not Redis: the spool exists for an outage of one store, so it must not need another
(a gateway with `redis_failure_mode=open` keeps serving while Redis is down too), and a file
survives a crash or restart of the process, which the in-memory buffer does not.

Each process appends JSON lines to its own file (`<dir>/<pid>-<random>.jsonl`) and holds an
exclusive flock on it for its life. A file whose lock can be taken belongs to a process that is
gone: any writer replays it (an orphan left by a crash, a restart or a scale-down). The spool is
bounded in bytes per process (ASAHI_LEDGER_SPOOL_MAX_MB); beyond it rows are dropped, counted and
reported in /health and the log.

Replay is at-least-once in one narrow window: rows are deleted from the file right after the
transaction that inserted them commits, so a crash between the two writes them twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import uuid
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot spool {type(value).__name__}")


def encode(kind: str, row: Any) -> bytes:
    """One JSON line: the row's kind ("event" or "audit") and its fields."""
    return json.dumps({"k": kind, "r": vars(row)}, default=_encode,
                      separators=(",", ":")).encode() + b"\n"


# The fields that are not JSON-native, by name: the same in LedgerRow and AuditRow.
_DECIMALS = {"cost_usd", "baseline_cost_usd"}


def decode(line: bytes, types: dict[str, type]) -> tuple[str, Any]:
    data = json.loads(line)
    kind, values = data["k"], data["r"]
    cls = types[kind]
    names = {f.name for f in fields(cls)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in names:  # a row spooled by an older version with a field since removed
            continue
        if value is not None and name in _DECIMALS:
            value = Decimal(value)
        elif value is not None and name == "organization_id":
            value = uuid.UUID(value)
        elif value is not None and name == "created_at":
            value = datetime.fromisoformat(value)
        out[name] = value
    return kind, cls(**out)


class Spool:
    """This process's spool file plus the orphans of dead processes in the same directory."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._fh: Any = None
        self._pid = 0
        self.bytes = 0
        self.rows = 0

    def _own(self) -> Any:
        if self._fh is None or self._pid != os.getpid():  # a forked child gets its own file
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            fh = open(path, "a+b")  # noqa: SIM115 - held open (and locked) for the process's life
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._fh, self._pid, self.bytes, self.rows = fh, os.getpid(), 0, 0
        return self._fh

    def write(self, lines: list[bytes]) -> int:
        """Append what fits under the cap (in order); returns how many lines were written."""
        fh = self._own()
        room = self.max_bytes - self.bytes
        n = 0
        for line in lines:
            if len(line) > room:
                break
            room -= len(line)
            n += 1
        if n:
            data = b"".join(lines[:n])
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            self.bytes += len(data)
            self.rows += n
        return n

    def read_own(self) -> list[bytes]:
        if self._fh is None or self._pid != os.getpid() or not self.rows:
            return []
        self._fh.seek(0)
        return self._fh.read().splitlines(keepends=True)

    def rewrite_own(self, lines: list[bytes]) -> None:
        """Replace this process's spool with `lines` (what was not written yet)."""
        fh = self._fh
        fh.seek(0)
        fh.truncate()
        if lines:
            fh.write(b"".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
        self.bytes, self.rows = sum(map(len, lines)), len(lines)

    def orphans(self) -> list[Path]:
        """Spool files of processes that are gone (their lock can be taken), oldest first."""
        if not self.directory.is_dir():
            return []
        own = getattr(self._fh, "name", None) if self._pid == os.getpid() else None
        paths = [p for p in self.directory.glob("*.jsonl") if str(p) != own]
        return sorted(paths, key=lambda p: p.stat().st_mtime if p.exists() else 0)


class Orphan:
    """A dead process's spool file, locked by us while it is replayed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def claim(self) -> bool:
        try:
            fh = open(self.path, "r+b")  # noqa: SIM115
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its process is alive
            fh.close()
            return False
        if not self.path.exists():  # replayed and deleted by another process just before
            fh.close()
            return False
        self._fh = fh
        return True

    def lines(self) -> list[bytes]:
        self._fh.seek(0)
        return self._fh.read().splitlines(keepends=True)

    def finish(self, remaining: list[bytes]) -> None:
        """Delete the file when all was written; otherwise keep what remains for a later try."""
        if remaining:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.write(b"".join(remaining))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        else:
            self.path.unlink(missing_ok=True)
        self._fh.close()
        self._fh = None
