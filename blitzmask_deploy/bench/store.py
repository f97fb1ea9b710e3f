"""SQLite result store: one row per benchmark cell, pending → done|failed, safe for one thread per device.

Accuracy cells (`blitzmask validate --device`: the outputs of one exported file on one device and delegate) live
in a second table of the same file, `accuracy_cells`, with the same pending → done|failed life and the same claims;
it is created when a store is opened, so stores written before it existed keep working. Both kinds of cell share
their first fields (`CellBase`: the file, the device, the delegate and threads).

A sweep first inserts every cell as 'pending' (INSERT OR IGNORE on the unique `cell_key`), then each finished
cell is written in one transaction. Re-running the same sweep skips 'done' cells, so a killed or unplugged
sweep is completed by running it again — nothing lost, nothing duplicated.

Before measuring a cell a sweep (or a `validate --device` run) claims it (`claim`): one transaction sets
`claimed_by` (host:pid:token) and a lease (`lease_until`, epoch seconds, renewed while the run lasts) on a pending
cell nobody else holds, so two processes measuring the same cells never measure one twice. A lease whose time has
passed, or whose owner process on this host no longer exists, is taken over.

A file that is not SQLite, or a SQLite file without the `cells` table, is refused untouched; a store locked by
another process is waited for `timeout` seconds (default 30, or BLITZMASK_STORE_TIMEOUT) and then refused —
both as BadInput.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from blitzmask_deploy.bench.stats import summarize
from blitzmask_deploy.core.errors import BadInput

DEFAULT_TIMEOUT_S = 30.0  # how long to wait for another process's write lock
LEASE_S = 60.0  # a claim not renewed for this long is taken over
_CLAIM_COLUMNS = {"claimed_by": "TEXT", "lease_until": "REAL"}
_CLAIMS = "".join(f", {column} {kind}" for column, kind in _CLAIM_COLUMNS.items())
_TABLES = ("cells", "accuracy_cells")

_COLUMNS = """
  cell_key TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
  model_path TEXT, model_sha256 TEXT, model_name TEXT, variant TEXT, precision TEXT,
  device_serial TEXT, device_kind TEXT, device_model TEXT, device_fingerprint TEXT,
  delegate TEXT, delegate_applied TEXT, fallback INTEGER, threads INTEGER, warmup INTEGER, runs INTEGER,
  sustained_s REAL, target_fps REAL,
  p50_ms REAL, p90_ms REAL, p99_ms REAL, mean_ms REAL, std_ms REAL, min_ms REAL, max_ms REAL, fps REAL,
  init_ms REAL, first_ms REAL, peak_memory_kb INTEGER, sustained_fps REAL, throttled INTEGER,
  cooldown_s REAL, runtime_version TEXT, app_version TEXT, runs_ms TEXT, result_json TEXT, error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0, started TEXT, finished TEXT
"""

_ACCURACY_COLUMNS = """
  cell_key TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
  model_path TEXT, model_sha256 TEXT, model_name TEXT, variant TEXT, precision TEXT,
  device_serial TEXT, device_kind TEXT, device_model TEXT, device_fingerprint TEXT,
  delegate TEXT, threads INTEGER, dataset TEXT, images INTEGER, data_digest TEXT,
  delegate_applied TEXT, fallback INTEGER, mask_ap REAL, host_ap REAL, reference_ap REAL,
  parity TEXT, parity_mean TEXT, runtime_version TEXT, app_version TEXT, result_json TEXT, error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0, started TEXT, finished TEXT
"""


@dataclass(frozen=True)
class CellBase:
    """What every cell names: the model file, where it runs (the device) and how (delegate, threads). The fields are
    the first columns of both tables; `table` is the table a kind of cell lives in."""

    table: ClassVar[str]

    model_path: str
    model_sha256: str
    model_name: str
    variant: str | None
    precision: str | None
    device_serial: str
    device_kind: str
    device_model: str | None
    device_fingerprint: str | None
    delegate: str
    threads: int


@dataclass(frozen=True)
class CellSpec(CellBase):
    """Everything that identifies one benchmark cell: its timing settings besides the file and the device."""

    table: ClassVar[str] = "cells"

    warmup: int
    runs: int
    sustained_s: float = 0.0
    target_fps: float = 30.0

    @property
    def key(self) -> str:
        """Hash of (model sha256, device fingerprint + serial, delegate, threads, warmup, runs, sustained)."""
        ident = [
            self.model_sha256,
            self.device_fingerprint,
            self.device_serial,
            self.delegate,
            self.threads,
            self.warmup,
            self.runs,
            float(self.sustained_s),
            float(self.target_fps) if self.sustained_s else None,
        ]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AccuracyCellSpec(CellBase):
    """Everything that identifies one accuracy cell: a file's outputs on the val images of a dataset, on one device
    with one delegate and thread count."""

    table: ClassVar[str] = "accuracy_cells"

    dataset: str
    images: int
    data_digest: str  # sha256 of the val annotations and of every image used

    @property
    def key(self) -> str:
        """Hash of (model sha256, device fingerprint + serial, delegate, threads, data digest)."""
        ident = ["accuracy", self.model_sha256, self.device_fingerprint, self.device_serial, self.delegate,
                 self.threads, self.data_digest]  # fmt: skip
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_owner() -> str:
    """A claim owner id unique to one sweep: host:pid:token."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """False when `owner` names a process of this host that no longer exists; True otherwise (another host's
    processes cannot be checked: their leases expire)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _timeout_default() -> float:
    value = os.environ.get("BLITZMASK_STORE_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise BadInput(f"BLITZMASK_STORE_TIMEOUT must be a number of seconds, got '{value}'") from None


class ResultStore:
    """The cells tables of one SQLite file (benchmark `cells`, `accuracy_cells`); one connection per thread, WAL
    journal."""

    def __init__(self, path: Path, *, timeout: float | None = None) -> None:
        self.path = Path(path)
        self.timeout = _timeout_default() if timeout is None else timeout
        self._local = threading.local()
        self._check_file()
        if self._missing_columns():
            with self._tx() as conn:
                conn.execute("BEGIN IMMEDIATE")  # another process may be creating the same store right now
                conn.execute(f"CREATE TABLE IF NOT EXISTS cells ({_COLUMNS}{_CLAIMS})")
                conn.execute(f"CREATE TABLE IF NOT EXISTS accuracy_cells ({_ACCURACY_COLUMNS}{_CLAIMS})")
                for table, column in self._missing_columns():  # a store written before claims existed
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {_CLAIM_COLUMNS[column]}")

    def _missing_columns(self) -> list[tuple[str, str]]:
        """(table, claim column) pairs this file lacks; both tables count as lacking them when absent."""
        with self._locked_as_bad_input():
            conn = self._conn()
            tables = {t: {r["name"] for r in conn.execute(f"PRAGMA table_info({t})")} for t in _TABLES}
        return [(t, c) for t, have in tables.items() for c in _CLAIM_COLUMNS if not have or c not in have]

    def _check_file(self) -> None:
        """BadInput unless the file is missing, empty, or an SQLite database that is (or may become) a store."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        # Read through SQLite only: opening and closing the file with a plain descriptor would drop the POSIX locks
        # of this process's other connections to it. The query only reads; a file that is not SQLite stays as it is.
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            with self._locked_as_bad_input():
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
        if tables and "cells" not in tables:
            raise BadInput(f"{self.path} is not a BlitzMask result store (no 'cells' table)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._locked_as_bad_input():
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _locked_as_bad_input(self) -> Iterator[None]:
        """Turn 'database is locked' (after `timeout` seconds of waiting) into one BadInput line."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise BadInput(f"{self.path} is locked by another process (waited {self.timeout:g} s)") from None
            raise
        except sqlite3.DatabaseError as err:
            if "not a database" in str(err):
                raise BadInput(f"{self.path} is not a BlitzMask result store (not an SQLite file)") from None
            raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction on this thread's connection; a lock held too long elsewhere is BadInput."""
        with self._locked_as_bad_input():
            conn = self._conn()
            with conn:
                yield conn

    def add_pending(self, cells: Sequence[CellSpec] | Sequence[AccuracyCellSpec]) -> int:
        """Insert cells (benchmark or accuracy cells, one kind) not stored yet as 'pending'; returns how many were
        new."""
        if not cells:  # e.g. every device went away before its cells were planned
            return 0
        table = cells[0].table
        cols = [*asdict(cells[0]).keys(), "cell_key", "status"]
        sql = f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(sql, [(*asdict(c).values(), c.key, "pending") for c in cells])
            return conn.total_changes - before

    def status(self, cell_key: str, table: str = "cells") -> str | None:
        """'pending' / 'done' / 'failed', or None for an unknown key."""
        with self._locked_as_bad_input():
            row = self._conn().execute(f"SELECT status FROM {table} WHERE cell_key = ?", (cell_key,)).fetchone()
        return row["status"] if row else None

    def mark_started(self, cell_key: str, table: str = "cells") -> None:
        """Record that a cell is being measured (it stays 'pending' until finished)."""
        with self._tx() as conn:
            conn.execute(
                f"UPDATE {table} SET started = ?, attempts = attempts + 1 WHERE cell_key = ?", (_now(), cell_key)
            )

    def finish(self, cell_key: str, result: dict, *, cooldown_s: float | None = None) -> str:
        """Store a protocol result in one transaction: 'done' when its status is ok, else 'failed'."""
        status = "done" if result.get("status") == "ok" else "failed"
        stats = summarize(result.get("runs_ms") or []) if status == "done" else {}
        sustained = result.get("sustained") or {}
        values = {
            **stats,
            "status": status,
            "delegate_applied": result.get("delegate_applied"),
            "fallback": int(bool(result.get("fallback"))),
            "init_ms": result.get("init_ms"),
            "first_ms": result.get("first_inference_ms"),
            "peak_memory_kb": result.get("peak_memory_kb"),
            "sustained_fps": sustained.get("achieved_fps"),
            "throttled": None if not sustained else int(bool(sustained.get("throttled"))),
            "cooldown_s": cooldown_s,
            "runtime_version": result.get("runtime_version"),
            "app_version": result.get("app_version"),
            "runs_ms": json.dumps(result.get("runs_ms") or []),
            "result_json": json.dumps(result),
            "error": None if status == "done" else (result.get("error") or f"status {result.get('status')}"),
            "finished": _now(),
        }
        self._update(cell_key, values)
        return status

    def finish_accuracy(self, cell_key: str, result: dict, figures: dict) -> str:
        """Store an accuracy-mode result and, when ok, its `figures` (mask_ap, host_ap, reference_ap, parity,
        parity_mean) in one transaction: 'done' when its status is ok, else 'failed'."""
        status = "done" if result.get("status") == "ok" else "failed"
        stored = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in figures.items()}
        values = {
            **(stored if status == "done" else {}),
            "status": status,
            "delegate_applied": result.get("delegate_applied"),
            "fallback": int(bool(result.get("fallback"))),
            "runtime_version": result.get("runtime_version"),
            "app_version": result.get("app_version"),
            "result_json": json.dumps(result),
            "error": None if status == "done" else (result.get("error") or f"status {result.get('status')}"),
            "finished": _now(),
        }
        self._update(cell_key, values, "accuracy_cells")
        return status

    def fail(self, cell_key: str, error: str, table: str = "cells") -> None:
        """Mark a cell 'failed' without a result (e.g. the instrumentation crashed)."""
        self._update(cell_key, {"status": "failed", "error": error, "finished": _now()}, table)

    def claim(self, cell_key: str, owner: str, statuses: tuple[str, ...] = ("pending",), table: str = "cells") -> bool:
        """Claim a cell whose status is among `statuses` for `owner` (lease of LEASE_S), in one transaction; False
        when it is not in those statuses or another owner holds a live lease on it."""
        with self._tx() as conn:
            conn.execute("BEGIN IMMEDIATE")  # the read and the update under one write lock
            row = conn.execute(
                f"SELECT status, claimed_by, lease_until FROM {table} WHERE cell_key = ?", (cell_key,)
            ).fetchone()
            if row is None or row["status"] not in statuses or not _claimable(row, owner):
                return False
            conn.execute(
                f"UPDATE {table} SET claimed_by = ?, lease_until = ? WHERE cell_key = ?",
                (owner, time.time() + LEASE_S, cell_key),
            )
            return True

    def renew(self, owner: str, table: str = "cells") -> None:
        """Extend the leases `owner` holds by LEASE_S from now."""
        with self._tx() as conn:
            conn.execute(
                f"UPDATE {table} SET lease_until = ? WHERE claimed_by = ? AND lease_until IS NOT NULL",
                (time.time() + LEASE_S, owner),
            )

    def release(self, owner: str, table: str = "cells") -> None:
        """Drop the leases `owner` still holds (e.g. the cells of a device that went away)."""
        with self._tx() as conn:
            conn.execute(f"UPDATE {table} SET lease_until = NULL WHERE claimed_by = ?", (owner,))

    def _update(self, cell_key: str, values: dict, table: str = "cells") -> None:
        values = {**values, "lease_until": None} if values.get("status") in ("done", "failed") else values
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as conn:
            conn.execute(f"UPDATE {table} SET {sets} WHERE cell_key = ?", (*values.values(), cell_key))

    def cells(self, status: str | None = None, keys: list[str] | None = None, table: str = "cells") -> list[dict]:
        """All cells of `table` ('cells' or 'accuracy_cells'; or those with `status` / among `keys`) as dicts, in
        insertion order."""
        with self._locked_as_bad_input():
            rows = (
                self._conn()
                .execute(
                    f"SELECT * FROM {table}" + (" WHERE status = ?" if status else "") + " ORDER BY rowid",
                    (status,) if status else (),
                )
                .fetchall()
            )
        wanted = set(keys) if keys is not None else None
        return [dict(r) for r in rows if wanted is None or r["cell_key"] in wanted]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _claimable(row: sqlite3.Row, owner: str) -> bool:
    """Nobody holds the cell, `owner` does, or the holder's lease ran out or its process is gone."""
    holder, until = row["claimed_by"], row["lease_until"]
    if holder is None or until is None or holder == owner:
        return True
    return until < time.time() or not owner_alive(holder)
