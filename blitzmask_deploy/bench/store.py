"""SQLite result store: one row per benchmark cell, pending → done|failed, safe for one thread per device.

Accuracy cells (`blitzmask validate --device`: the outputs of one exported file on one device and delegate) live
in a second table of the same file, `accuracy_cells`, with the same pending → done|failed life; it is created when
a store is opened, so stores written before it existed keep working.

A sweep first inserts every cell as 'pending' (INSERT OR IGNORE on the unique `cell_key`), then each finished
cell is written in one transaction. Re-running the same sweep skips 'done' cells, so a killed or unplugged
sweep is completed by running it again — nothing lost, nothing duplicated.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from blitzmask_deploy.bench.stats import summarize

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
class CellSpec:
    """Everything that identifies one benchmark cell (its settings and where it runs)."""

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
class AccuracyCellSpec:
    """Everything that identifies one accuracy cell: a file's outputs on the val images of a dataset, on one device
    with one delegate and thread count."""

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


class ResultStore:
    """The cells tables of one SQLite file (benchmark `cells`, `accuracy_cells`); one connection per thread, WAL
    journal."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS cells ({_COLUMNS})")
            conn.execute(f"CREATE TABLE IF NOT EXISTS accuracy_cells ({_ACCURACY_COLUMNS})")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def add_pending(self, cells: list[CellSpec] | list[AccuracyCellSpec]) -> int:
        """Insert cells (benchmark or accuracy cells) not stored yet as 'pending'; returns how many were new."""
        if not cells:  # e.g. every device went away before its cells were planned
            return 0
        table = _table(cells[0])
        cols = [*asdict(cells[0]).keys(), "cell_key", "status"]
        sql = f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._conn() as conn:
            before = conn.total_changes
            conn.executemany(sql, [(*asdict(c).values(), c.key, "pending") for c in cells])
            return conn.total_changes - before

    def status(self, cell_key: str, table: str = "cells") -> str | None:
        """'pending' / 'done' / 'failed', or None for an unknown key."""
        row = self._conn().execute(f"SELECT status FROM {table} WHERE cell_key = ?", (cell_key,)).fetchone()
        return row["status"] if row else None

    def mark_started(self, cell_key: str, table: str = "cells") -> None:
        """Record that a cell is being measured (it stays 'pending' until finished)."""
        with self._conn() as conn:
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

    def _update(self, cell_key: str, values: dict, table: str = "cells") -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._conn() as conn:
            conn.execute(f"UPDATE {table} SET {sets} WHERE cell_key = ?", (*values.values(), cell_key))

    def cells(self, status: str | None = None, keys: list[str] | None = None, table: str = "cells") -> list[dict]:
        """All cells of `table` ('cells' or 'accuracy_cells'; or those with `status` / among `keys`) as dicts, in
        insertion order."""
        rows = self._conn().execute(
            f"SELECT * FROM {table}" + (" WHERE status = ?" if status else "") + " ORDER BY rowid",
            (status,) if status else (),
        )
        wanted = set(keys) if keys is not None else None
        return [dict(r) for r in rows if wanted is None or r["cell_key"] in wanted]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _table(cell: CellSpec | AccuracyCellSpec) -> str:
    return "accuracy_cells" if isinstance(cell, AccuracyCellSpec) else "cells"
