"""The app ↔ driver protocol, schema 1 (see docs/benchmarking.md): command line, device paths, result parsing.

Every argument that goes into a device shell command is quoted with `shlex.quote`; model files live at a
content-addressed path, so a hostile local file name never reaches the device shell.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable

from blitzmask_deploy.bench.errors import InstrumentationFailed

SCHEMA = 1
APP_VERSION = "0.1.0"
PACKAGE = "com.blitzmask.bench"
RUNNER = f"{PACKAGE}/.BenchInstrumentation"
REMOTE_ROOT = "/data/local/tmp/blitzmask"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi", "qnn")
STATUSES = ("ok", "runtime_missing", "unsupported_delegate", "error")
RESULT_KEY = "blitzmask_result"
REQUIRED_KEYS = ("schema", "status", "delegate_requested", "threads", "warmup", "runs", "runs_ms")


def quote_command(args: Iterable[str | int | float]) -> str:
    """One shell command line with every argument quoted."""
    return " ".join(shlex.quote(str(a)) for a in args)


def remote_model_path(sha256: str) -> str:
    """Where a model with this sha256 lives on the device."""
    _check_hex(sha256)
    return f"{REMOTE_ROOT}/models/{sha256}.tflite"


def remote_result_path(cell_key: str) -> str:
    """Where the app writes the result JSON of one cell."""
    _check_hex(cell_key)
    return f"{REMOTE_ROOT}/results/{cell_key}.json"


def _check_hex(value: str) -> None:
    if not value or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"expected a lower-case hex digest, got {value!r}")


def instrument_args(
    model: str,
    *,
    delegate: str,
    threads: int,
    warmup: int,
    runs: int,
    out: str,
    cooldown_c: float | None = None,
    sustained_s: float = 0,
    target_fps: float = 30.0,
) -> list[str]:
    """The argv of `am instrument` for one cell (unquoted; see `instrument_command`)."""
    if delegate not in DELEGATES:
        raise ValueError(f"unknown delegate {delegate!r}")
    extras = [("model", model), ("delegate", delegate), ("threads", threads), ("warmup", warmup), ("runs", runs)]
    if cooldown_c is not None:
        extras.append(("cooldown_c", cooldown_c))
    if sustained_s:
        extras += [("sustained_s", sustained_s), ("target_fps", target_fps)]
    extras.append(("out", out))
    argv = ["am", "instrument", "-w", "-r"]
    for key, value in extras:
        argv += ["-e", key, str(value)]
    return [*argv, RUNNER]


def instrument_command(model: str, **kwargs: object) -> str:
    """`am instrument -w -r -e model … RUNNER` as one quoted shell line."""
    return quote_command(instrument_args(model, **kwargs))  # type: ignore[arg-type]


def parse_instrument_output(text: str) -> tuple[dict | None, str | None]:
    """(result JSON from the status line or None, INSTRUMENTATION_RESULT status or None).

    Raises InstrumentationFailed for `INSTRUMENTATION_FAILED` / `INSTRUMENTATION_ABORTED` / a crash.
    """
    result: dict | None = None
    status: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if "INSTRUMENTATION_FAILED" in line or line.startswith("INSTRUMENTATION_ABORTED"):
            raise InstrumentationFailed(f"am instrument: {line}")
        if line.startswith("INSTRUMENTATION_STATUS:"):
            key, _, value = line.removeprefix("INSTRUMENTATION_STATUS:").strip().partition("=")
            if key == RESULT_KEY:
                result = parse_result(value)
            elif key == "Error":
                raise InstrumentationFailed(f"am instrument: {value.strip()}")
        elif line.startswith("INSTRUMENTATION_RESULT:"):
            key, _, value = line.removeprefix("INSTRUMENTATION_RESULT:").strip().partition("=")
            if key == "shortMsg":
                raise InstrumentationFailed(f"am instrument: app {value.strip()}")
            if key == "status":
                status = value.strip()
    return result, status


def parse_result(text: str | bytes) -> dict:
    """Parse and check a schema-1 result JSON; InstrumentationFailed when it is not one."""
    try:
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InstrumentationFailed(f"result is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise InstrumentationFailed("result is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise InstrumentationFailed(f"result lacks {', '.join(missing)}")
    if obj["schema"] != SCHEMA:
        raise InstrumentationFailed(f"result schema {obj['schema']!r}, expected {SCHEMA}")
    if obj["status"] not in STATUSES:
        raise InstrumentationFailed(f"result status {obj['status']!r} is not one of {', '.join(STATUSES)}")
    return obj


def base_result(model: str, *, delegate: str, threads: int, warmup: int, runs: int) -> dict:
    """A schema-1 result with every key present and nothing measured yet (status 'error')."""
    return {
        "schema": SCHEMA,
        "status": "error",
        "error": None,
        "model": model,
        "delegate_requested": delegate,
        "delegate_applied": None,
        "fallback": False,
        "fallback_ops": [],
        "threads": threads,
        "warmup": warmup,
        "runs": runs,
        "init_ms": None,
        "first_inference_ms": None,
        "runs_ms": [],
        "peak_memory_kb": None,
        "thermal_before": {},
        "thermal_after": {},
        "clocks_before": {},
        "clocks_after": {},
        "sustained": None,
        "runtime": "litert",
        "runtime_version": None,
        "app_version": APP_VERSION,
        "device": {},
    }
