"""Stored results → `Results`: accuracy from `validation.json` joined with benchmark cells by file sha256, and the
accuracy cells measured on devices (`validate --device`) as the store holds them.

RESULTS may be a demo/run directory (every `**/validation.json` and `**/*.sqlite` under it), a `.sqlite` bench
store (the export directories its cells point at are searched for `validation.json`), or a `validation.json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, get_args

from blitzmask_deploy.core.artifacts import MANIFEST_NAME, VALIDATION_NAME, ExportedFile, load_manifest
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.jsonio import read_json
from blitzmask_deploy.data.coco_check import is_finite
from blitzmask_deploy.report.results import FILE_FIELDS, Results, Row

_SKIP_DIRS = {".venv", ".git", "__pycache__", "node_modules"}
_FORMATS = get_args(ExportedFile.model_fields["format"].annotation)
_PRECISIONS = get_args(ExportedFile.model_fields["precision"].annotation)


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
    accuracy = [cell for store in store_paths for cell in _read_store(store, "accuracy_cells")]
    validation_paths += _validations_near_cells(cells, validation_paths)
    validations = [_read_validation(p) for p in validation_paths]
    manifests = _manifests_for(validation_paths, cells)
    rows = _join(validations, cells, manifests)
    if not rows and not accuracy:
        raise BadInput(f"{path}: no exported files and no benchmark cells in the results")
    return Results(source=path, rows=rows, validations=validations, manifests=manifests, accuracy=accuracy)


def _find(root: Path, pattern: str) -> list[Path]:
    return [p for p in root.rglob(pattern) if p.is_file() and not _SKIP_DIRS & set(p.relative_to(root).parts)]


def _read_validation(path: Path) -> dict[str, Any]:
    """A validation.json, every field the report and the gate use checked: BadInput naming the file, the entry and
    the field of the first that cannot be used (nothing is skipped or shown as missing instead)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        raise BadInput(f"{path} is not a validation.json from 'blitzmask validate' (no 'variants' list)")
    if not isinstance(data.get("variant"), str | None):
        raise BadInput(f"{path}: variant {data['variant']!r:.40} is not a string")
    reference = data.get("reference")
    if not isinstance(reference, dict | None):
        raise BadInput(f"{path}: reference {reference!r:.40} is not an object")
    _number(f"{path}: reference", reference or {}, "mask_ap", low=0.0, high=1.0)
    for i, entry in enumerate(data["variants"]):
        if not isinstance(entry, dict):
            raise BadInput(f"{path}: variants[{i}] is not an object")
        missing = [k for k in ("name", "format", "precision", "sha256", "mask_ap") if k not in entry]
        if missing:
            raise BadInput(f"{path}: variants[{i}] lacks {', '.join(missing)}")
        for key in ("name", "format", "precision", "sha256", "file"):
            if not (isinstance(entry.get(key), str) and entry[key]) and (key != "file" or entry.get(key) is not None):
                raise BadInput(f"{path}: variants[{i}]: {key} {entry.get(key)!r:.40} is not a non-empty string")
        where = f"{path}: variants[{i}] ({entry['name']})"
        if entry["format"] not in _FORMATS or entry["precision"] not in _PRECISIONS:
            raise BadInput(
                f"{where}: format {entry['format']!r:.20} with precision {entry['precision']!r:.20} is no exported "
                f"file's (formats {', '.join(_FORMATS)}, precisions {', '.join(_PRECISIONS)})"
            )
        _number(where, entry, "mask_ap", low=0.0, high=1.0, required=True)
        _number(where, entry, "mask_ap_drop", required=True)
        _number(where, entry, "latency_ms_p50", low=0.0)
        if not isinstance(entry.get("passed"), bool | None):
            raise BadInput(f"{where}: passed {entry['passed']!r:.40} is not true or false")
    return data


def _number(
    where: str, record: dict, key: str, *, low: float = -math.inf, high: float = math.inf, required: bool = False
) -> None:
    """BadInput `WHERE: KEY VALUE is not a finite number [from LOW to HIGH]` unless record[key] is one (or, when not
    `required`, absent or null)."""
    value = record.get(key)
    if value is None and not required:
        return
    if not (is_finite(value) and low <= value <= high):
        bounds = f" from {low:g} to {high:g}" if math.isfinite(high) else f" >= {low:g}" if math.isfinite(low) else ""
        raise BadInput(f"{where}: {key} {value!r:.40} is not a finite number{bounds}")


def _read_store(path: Path, table: str = "cells") -> list[dict[str, Any]]:
    import sqlite3

    from blitzmask_deploy.bench.store import ResultStore

    try:
        # A plain connection, as the store's own file check uses: a read-only one cannot recover the write-ahead log
        # another process left behind and reads such a store as malformed. The query only reads (no tables are
        # created in a foreign file).
        conn = sqlite3.connect(path)
        try:
            has_cells = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='cells'").fetchone()
        finally:
            conn.close()
        if not has_cells:
            raise BadInput(f"{path} is not a BlitzMask bench store (no 'cells' table)")
        store = ResultStore(path)
        try:
            cells = store.cells(table=table)
        finally:
            store.close()
    except sqlite3.Error as err:
        raise BadInput(f"{path} is not a BlitzMask bench store: {err}") from None
    for cell in cells:
        _check_cell(cell, f"{path}: {table} cell {cell.get('cell_key')}")
    return cells


_CELL_TEXT = ("model_path", "model_sha256", "model_name", "variant", "precision", "device_serial", "device_model",
              "delegate", "delegate_applied", "error")  # fmt: skip
_CELL_NUMBERS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps", "init_ms", "first_ms",
                 "peak_memory_kb", "sustained_fps", "cooldown_s", "threads")  # fmt: skip
_CELL_AP = ("mask_ap", "host_ap", "reference_ap")  # accuracy cells
_RESULT_OBJECTS = ("device", "thermal_before", "thermal_after", "clocks_before", "sustained")
_RESULT_TEXT = ("error", "delegate_requested", "delegate_applied")


def _check_cell(cell: dict[str, Any], where: str) -> None:
    """BadInput naming the cell and the column (or result field) of a stored cell the report cannot use: text that is
    not text, numbers that are not finite numbers >= 0, AP outside 0–1, a result that is not a JSON object, timed
    runs that are not numbers, device or thermal records that are not objects."""
    for key in _CELL_TEXT:
        if not isinstance(cell.get(key), str | None) or "\0" in (cell.get(key) or ""):
            raise BadInput(f"{where}: {key} {cell[key]!r:.40} is not text")
    for key in _CELL_NUMBERS:
        _number(where, cell, key, low=0.0)
    for key in _CELL_AP:  # a finished accuracy cell has all three
        _number(where, cell, key, low=0.0, high=1.0, required=key in cell and cell.get("status") == "done")
    result = _result_json(cell, where)
    for key in _RESULT_OBJECTS:
        if not isinstance(result.get(key), dict | None):
            raise BadInput(f"{where}: result_json {key} {result[key]!r:.40} is not an object")
    texts = [("", k) for k in _RESULT_TEXT] + [("device ", k) for k in ("model", "soc")]
    for prefix, key in texts:
        record = (result.get("device") or {}) if prefix else result
        if not isinstance(record.get(key), str | None):
            raise BadInput(f"{where}: result_json {prefix}{key} {record[key]!r:.40} is not text")
    runs = result.get("runs_ms")
    if not (runs is None or (isinstance(runs, list) and all(is_finite(v) and v >= 0 for v in runs))):
        raise BadInput(f"{where}: result_json runs_ms is not a list of finite numbers >= 0")
    for key in ("thermal_before", "thermal_after"):
        if not all(is_finite(v) for v in (result.get(key) or {}).values()):
            raise BadInput(f"{where}: result_json {key} holds a temperature that is not a finite number")


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
    """Manifest JSON (as a dict) keyed by file sha256, from the export dirs of the validations and cells; a manifest
    there that is not a valid one is BadInput (its figures would be missing from the report otherwise)."""
    dirs = {p.parent for p in validation_paths} | {Path(c["model_path"]).parent for c in cells if c.get("model_path")}
    by_sha: dict[str, dict[str, Any]] = {}
    for directory in sorted(dirs):
        if (directory / MANIFEST_NAME).is_file():
            manifest = load_manifest(directory).model_dump()
            by_sha.update((entry["sha256"], manifest) for entry in manifest["files"])
    return by_sha


def _gmacs(manifest: dict[str, Any] | None) -> float | None:
    if not manifest:
        return None
    value = (manifest.get("architecture") or {}).get("gmacs")
    return float(value) if is_finite(value) and value > 0 else None


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
        **{k: getattr(base, k) for k in FILE_FIELDS},
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


def _result_json(cell: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A cell's stored result object ({} when none); one that is not a JSON object is BadInput naming `where`."""
    raw = cell.get("result_json")
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise BadInput(f"{where}: result_json is not a JSON object")
    return value


def _temps(value: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in (value or {}).items()}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
