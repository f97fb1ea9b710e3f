"""Helpers shared by CLI modules: JSON output, paths that must exist, comma lists, finite numbers."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

from blitzmask_deploy.core.errors import BadInput


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (logs and progress go to stderr)."""
    sys.stdout.write(json.dumps(obj, indent=None, default=_json_default) + "\n")
    sys.stdout.flush()


def emit_verdict(result: Any, as_json: bool) -> None:
    """Print a check's result (`.to_json()` or `.to_table()`) and exit 1 when it did not pass."""
    if as_json:
        emit_json(result.to_json())
    else:
        print(result.to_table())
    if not result.passed:
        raise typer.Exit(1)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def info(message: str) -> None:
    """A human-readable line on stderr."""
    print(message, file=sys.stderr, flush=True)


def existing_path(path: Path, what: str = "path") -> Path:
    """Return `path` if it exists, else raise BadInput naming it."""
    if not path.exists():
        raise BadInput(f"{what} not found: {path}")
    return path


def finite(value: float | None) -> float | None:
    """Option callback: a float option must be a finite number ('nan' and 'inf' parse as floats)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def split_csv(value: str | None, allowed: set[str] | None = None, what: str = "value") -> list[str]:
    """Parse 'a,b,c' into a list, checking each item against `allowed` when given; a value naming nothing (e.g. ''
    or ',') is BadInput."""
    if value is None:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise BadInput(f"no {what} in {value!r}: give one or more, separated by commas")
    if allowed is not None:
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise BadInput(f"unknown {what} {', '.join(unknown)} (choose from {', '.join(sorted(allowed))})")
    return items


def default(config: type, name: str) -> Any:
    """The default of field `name` of dataclass `config`: options take their defaults from the library's config."""
    field = {f.name: f for f in dataclasses.fields(config)}[name]
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def open_cli_devices(device: str | None, adb: list[str], timeout: float) -> list:
    """The devices `--device` names (default all) on the `--adb` servers; a line per note; BadInput when none."""
    from blitzmask_deploy.bench.discovery import open_devices

    wanted = split_csv(device, what="device") if device is not None else ["all"]
    devices, notes = open_devices(wanted, adb or None, instrument_timeout=timeout)
    for note in notes:
        info(note)
    if not devices:
        raise BadInput(f"no device matches --device {device}")
    return devices


def open_store(store: Path) -> Any:
    """The `--store` results file as a ResultStore; one BadInput line when SQLite cannot open it."""
    import sqlite3

    from blitzmask_deploy.bench.store import ResultStore

    try:
        return ResultStore(store)
    except sqlite3.Error as err:
        raise BadInput(f"{store}: cannot open it as a result store ({err})") from None
