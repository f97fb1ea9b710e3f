"""Stored results → one table: accuracy from `validation.json` joined with benchmark cells by file sha256.

RESULTS may be a demo/run directory (every `**/validation.json` and `**/*.sqlite` under it), a `.sqlite` bench
store (the export directories its cells point at are searched for `validation.json`), or a `validation.json`.
Accuracy figures are on COCO's 0–1 scale (`mask_ap`, `drop` = reference AP − file AP); tables show AP points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blitzmask_deploy.errors import BadInput

VALIDATION_NAME = "validation.json"
_SKIP_DIRS = {".venv", ".git", "__pycache__", "node_modules"}


@dataclass
class Row:
    """One exported file, optionally on one benchmark cell (device × delegate × threads)."""

    variant: str
    name: str
    file: str
    format: str
    precision: str
    sha256: str
    mask_ap: float | None = None
    drop: float | None = None
    reference_ap: float | None = None
    host_p50_ms: float | None = None
    validation_passed: bool | None = None
    gmacs: float | None = None
    status: str = "not benchmarked"
    device: str | None = None
    device_serial: str | None = None
    soc: str | None = None
    delegate: str | None = None
    delegate_applied: str | None = None
    threads: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    init_ms: float | None = None
    error: str | None = None
    runs_ms: list[float] = field(default_factory=list)
    thermal_before: dict[str, float] = field(default_factory=dict)
    thermal_after: dict[str, float] = field(default_factory=dict)
    clocks_before: dict[str, Any] = field(default_factory=dict)
    sustained: dict[str, Any] | None = None

    @property
    def benchmarked(self) -> bool:
        """True when this row carries measured latency."""
        return self.status == "done" and self.p50_ms is not None

    @property
    def target(self) -> str:
        """'device / delegate / N threads' label of the cell."""
        return f"{self.device} / {self.delegate} / {self.threads}t"

    @property
    def thermal_delta_c(self) -> float | None:
        """Rise of the hottest zone over the cell, °C (None when not recorded)."""
        if not self.thermal_before or not self.thermal_after:
            return None
        return max(self.thermal_after.values()) - max(self.thermal_before.values())


_FILE_FIELDS = [
    "variant",
    "name",
    "file",
    "format",
    "precision",
    "sha256",
    "mask_ap",
    "drop",
    "reference_ap",
    "host_p50_ms",
    "validation_passed",
    "gmacs",
]


@dataclass
class Results:
    """Everything the report and the gate need, read from stored files only."""

    source: Path
    rows: list[Row]
    validations: list[dict[str, Any]]
    manifests: dict[str, dict[str, Any]]

    def files(self) -> list[Row]:
        """One row per exported file with accuracy (the first row seen for each sha256)."""
        seen: dict[str, Row] = {}
        for row in self.rows:
            if row.mask_ap is not None:
                seen.setdefault(row.sha256, row)
        return list(seen.values())

    def benchmarked(self) -> list[Row]:
        """Rows with measured latency."""
        return [r for r in self.rows if r.benchmarked]

    def failed(self) -> list[Row]:
        """Benchmark cells that ran but did not produce latency (runtime missing, unsupported delegate, error)."""
        return [r for r in self.rows if r.status in ("failed", "pending")]

    def variants(self) -> list[str]:
        """Model variants present, in first-seen order."""
        return list(dict.fromkeys(r.variant for r in self.rows))


def load_results(path: Path) -> Results:
    """Read a run directory, a `.sqlite` bench store or a `validation.json`; BadInput when nothing usable."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"results not found: {path}")
    if path.is_dir():
        validation_paths = sorted(_find(path, VALIDATION_NAME))
        store_paths = sorted(_find(path, "*.sqlite"))
        if not validation_paths and not store_paths:
            raise BadInput(f"{path}: no {VALIDATION_NAME} and no .sqlite bench store under it")
    elif path.suffix in (".sqlite", ".db", ".sqlite3"):
        validation_paths, store_paths = [], [path]
    elif path.suffix == ".json":
        validation_paths, store_paths = [path], []
    else:
        raise BadInput(f"{path}: expected a run directory, a .sqlite bench store or a {VALIDATION_NAME}")

    cells = [cell for store in store_paths for cell in _read_store(store)]
    validation_paths += _validations_near_cells(cells, validation_paths)
    validations = [_read_validation(p) for p in validation_paths]
    manifests = _manifests_for(validation_paths, cells)
    rows = _join(validations, cells, manifests)
    if not rows:
        raise BadInput(f"{path}: no exported files and no benchmark cells in the results")
    return Results(source=path, rows=rows, validations=validations, manifests=manifests)


def _find(root: Path, pattern: str) -> list[Path]:
    return [p for p in root.rglob(pattern) if p.is_file() and not _SKIP_DIRS & set(p.relative_to(root).parts)]


def _read_validation(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        raise BadInput(f"{path} is not a validation.json from 'blitzmask validate' (no 'variants' list)")
    for i, entry in enumerate(data["variants"]):
        if not isinstance(entry, dict):
            raise BadInput(f"{path}: variants[{i}] is not an object")
        missing = [k for k in ("name", "format", "precision", "sha256", "mask_ap") if k not in entry]
        if missing:
            raise BadInput(f"{path}: variants[{i}] lacks {', '.join(missing)}")
    return data


def _read_store(path: Path) -> list[dict[str, Any]]:
    import sqlite3

    from blitzmask_deploy.bench.store import ResultStore

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:  # never create tables in a foreign file
            has_cells = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='cells'").fetchone()
        if not has_cells:
            raise BadInput(f"{path} is not a BlitzMask bench store (no 'cells' table)")
        store = ResultStore(path)
        try:
            return store.cells()
        finally:
            store.close()
    except sqlite3.Error as err:
        raise BadInput(f"{path} is not a BlitzMask bench store: {err}") from None


def _validations_near_cells(cells: list[dict[str, Any]], known: list[Path]) -> list[Path]:
    """validation.json files beside the exported models the bench cells point at."""
    known_resolved = {p.resolve() for p in known}
    found: list[Path] = []
    for cell in cells:
        model_path = cell.get("model_path")
        if not model_path:
            continue
        candidate = Path(model_path).parent / VALIDATION_NAME
        if candidate.is_file() and candidate.resolve() not in known_resolved:
            known_resolved.add(candidate.resolve())
            found.append(candidate)
    return found


def _manifests_for(validation_paths: list[Path], cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Manifest JSON (raw dict) keyed by file sha256, from the export dirs of the validations and cells."""
    dirs = {p.parent for p in validation_paths} | {Path(c["model_path"]).parent for c in cells if c.get("model_path")}
    by_sha: dict[str, dict[str, Any]] = {}
    for directory in sorted(dirs):
        path = directory / "manifest.json"
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        for entry in manifest.get("files", []) if isinstance(manifest, dict) else []:
            if isinstance(entry, dict) and entry.get("sha256"):
                by_sha[entry["sha256"]] = manifest
    return by_sha


def _gmacs(manifest: dict[str, Any] | None) -> float | None:
    if not manifest:
        return None
    value = (manifest.get("architecture") or {}).get("gmacs")
    return float(value) if isinstance(value, int | float) else None


def _file_rows(validations: list[dict[str, Any]], manifests: dict[str, dict[str, Any]]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for val in validations:
        reference = (val.get("reference") or {}).get("mask_ap")
        for entry in val["variants"]:
            manifest = manifests.get(entry["sha256"])
            rows[entry["sha256"]] = Row(
                variant=str(val.get("variant") or (manifest or {}).get("variant") or "?"),
                name=str(entry["name"]),
                file=str(entry.get("file") or entry["name"]),
                format=str(entry["format"]),
                precision=str(entry["precision"]),
                sha256=str(entry["sha256"]),
                mask_ap=_float(entry.get("mask_ap")),
                drop=_float(entry.get("mask_ap_drop")),
                reference_ap=_float(reference),
                host_p50_ms=_float(entry.get("latency_ms_p50")),
                validation_passed=entry.get("passed"),
                gmacs=_gmacs(manifest),
            )
    return rows


def _cell_row(cell: dict[str, Any], base: Row | None, manifests: dict[str, dict[str, Any]]) -> Row:
    result = _result_json(cell)
    device_info = result.get("device") or {}
    sha = str(cell.get("model_sha256") or "")
    manifest = manifests.get(sha)
    if base is None:
        spec = next((f for f in (manifest or {}).get("files", []) if f.get("sha256") == sha), {})
        name = cell.get("model_name") or Path(str(cell.get("model_path") or "?")).stem
        base = Row(
            variant=str(cell.get("variant") or (manifest or {}).get("variant") or "?"),
            name=str(name),
            file=str(spec.get("file") or Path(str(cell.get("model_path") or name)).name),
            format=str(spec.get("format") or "tflite"),
            precision=str(cell.get("precision") or spec.get("precision") or "?"),
            sha256=sha,
            gmacs=_gmacs(manifest),
        )
    serial = cell.get("device_serial")
    return Row(
        **{k: getattr(base, k) for k in _FILE_FIELDS},
        status=str(cell.get("status") or "pending"),
        device=str(cell.get("device_model") or device_info.get("model") or serial or "?"),
        device_serial=serial,
        soc=device_info.get("soc"),
        delegate=cell.get("delegate") or result.get("delegate_requested"),
        delegate_applied=cell.get("delegate_applied") or result.get("delegate_applied"),
        threads=_int(cell.get("threads")),
        p50_ms=_float(cell.get("p50_ms")),
        p90_ms=_float(cell.get("p90_ms")),
        p99_ms=_float(cell.get("p99_ms")),
        fps=_float(cell.get("fps")),
        init_ms=_float(cell.get("init_ms")),
        error=cell.get("error") or result.get("error"),
        runs_ms=[float(v) for v in result.get("runs_ms") or []],
        thermal_before=_temps(result.get("thermal_before")),
        thermal_after=_temps(result.get("thermal_after")),
        clocks_before=dict(result.get("clocks_before") or {}),
        sustained=result.get("sustained") or None,
    )


def _join(
    validations: list[dict[str, Any]], cells: list[dict[str, Any]], manifests: dict[str, dict[str, Any]]
) -> list[Row]:
    files = _file_rows(validations, manifests)
    rows: list[Row] = []
    benched: set[str] = set()
    for cell in cells:
        sha = str(cell.get("model_sha256") or "")
        rows.append(_cell_row(cell, files.get(sha), manifests))
        benched.add(sha)
    rows.extend(row for sha, row in files.items() if sha not in benched)
    order = {sha: i for i, sha in enumerate(files)}
    rows.sort(key=lambda r: (order.get(r.sha256, len(order)), r.name, r.device or "", r.delegate or "", r.threads or 0))
    return rows


def _result_json(cell: dict[str, Any]) -> dict[str, Any]:
    raw = cell.get("result_json")
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _temps(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
