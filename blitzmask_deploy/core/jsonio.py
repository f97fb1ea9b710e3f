"""JSON files read and written safely: the one reader of every JSON input (COCO files, predictions, manifests,
validation results), and an atomic writer for the JSON files a command leaves beside its inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.errors import BadInput


def read_json(path: Path) -> Any:
    """Any JSON value from `path`; unreadable, undecodable, too deeply nested or too long numbers are BadInput."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, and ints over Python's digit limit
        raise BadInput(f"{path}: not valid JSON ({' '.join(str(err).split())[:200]})") from None
    except RecursionError:
        raise BadInput(f"{path}: not valid JSON (nested too deeply)") from None
    except OSError as err:
        raise BadInput(f"{path}: cannot read ({err.strerror or err})") from None


def write_json_atomic(path: Path, value: Any, *, indent: int | None = 2) -> Path:
    """Write `value` as JSON to `path` through a temporary file renamed over it: readers see the old file or the
    whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(value, indent=indent) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
