"""Stored results → `Results`: accuracy from `validation.json` joined with benchmark cells by file sha256, and the
accuracy cells measured on devices (`validate --device`) as the store holds them.

RESULTS may be a demo/run directory (every `**/validation.json` and `**/*.sqlite` under it), a `.sqlite` bench
store (the export directories its cells point at are searched for `validation.json`), or a `validation.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.artifacts import VALIDATION_NAME
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.report.results import FILE_FIELDS, Results, Row

_SKIP_DIRS = {".venv", ".git", "__pycache__", "node_modules"}


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


def _read_store(path: Path, table: str = "cells") -> list[dict[str, Any]]:
    import sqlite3

    from blitzmask_deploy.bench.store import ResultStore

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:  # never create tables in a foreign file
            has_cells = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='cells'").fetchone()
        if not has_cells:
            raise BadInput(f"{path} is not a BlitzMask bench store (no 'cells' table)")
        store = ResultStore(path)
        try:
            return store.cells(table=table)
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
