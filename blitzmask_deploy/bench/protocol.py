"""The app ↔ driver protocol, schema 1 (see docs/benchmarking.md): command line, device paths, result parsing,
and the `.npy` tensor files of accuracy mode.

Every argument that goes into a device shell command is quoted with `shlex.quote`; model files and input sets
live at content-addressed paths, so a hostile local file name never reaches the device shell.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from blitzmask_deploy.bench.errors import InstrumentationFailed
from blitzmask_deploy.core.errors import BadInput

if TYPE_CHECKING:
    import numpy as np

SCHEMA = 1
APP_VERSION = "0.2.0"
PACKAGE = "com.blitzmask.bench"
RUNNER = f"{PACKAGE}/.BenchInstrumentation"
REMOTE_ROOT = "/data/local/tmp/blitzmask"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi", "qnn")
MODES = ("timing", "accuracy")
STATUSES = ("ok", "runtime_missing", "unsupported_delegate", "error")
RESULT_KEY = "blitzmask_result"
REQUIRED_KEYS = ("schema", "status", "delegate_requested", "threads", "warmup", "runs", "runs_ms")
ACCURACY_REQUIRED_KEYS = (
    "schema", "mode", "status", "delegate_requested", "threads", "samples", "samples_ms", "output_tensors",
)  # fmt: skip
TENSOR_DTYPES = ("float32", "float16", "int8", "uint8", "int32")
MAX_SAMPLES = 20000  # input files per accuracy request (the app's limit: one binder transaction)
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,195}\.npy")


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


def remote_inputs_path(digest: str) -> str:
    """The device folder of the input set with this digest (see `input_set_digest`)."""
    _check_hex(digest)
    return f"{REMOTE_ROOT}/inputs/{digest}"


def remote_outputs_path(cell_key: str) -> str:
    """The device folder where the app writes the output tensors of one accuracy cell."""
    _check_hex(cell_key)
    return f"{REMOTE_ROOT}/outputs/{cell_key}"


def _check_hex(value: str) -> None:
    if not value or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"expected a lower-case hex digest, got {value!r}")


def instrument_args(
    model: str,
    *,
    delegate: str,
    threads: int,
    out: str,
    warmup: int = 10,
    runs: int = 100,
    cooldown_c: float | None = None,
    sustained_s: float = 0,
    target_fps: float = 30.0,
    mode: str = "timing",
    inputs: str | None = None,
    outputs: str | None = None,
) -> list[str]:
    """The argv of `am instrument` for one cell (unquoted; see `instrument_command`).

    Timing mode (the default) uses `warmup`, `runs`, `cooldown_c`, `sustained_s` and `target_fps`; accuracy mode
    runs every .npy file of the device folder `inputs` and writes the output tensors into the folder `outputs`."""
    if delegate not in DELEGATES:
        raise ValueError(f"unknown delegate {delegate!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    extras: list[tuple[str, object]] = [("model", model), ("delegate", delegate), ("threads", threads)]
    if mode == "accuracy":
        if not inputs or not outputs:
            raise ValueError("accuracy mode needs an inputs and an outputs folder")
        extras += [("mode", mode), ("inputs", inputs), ("outputs", outputs)]
    else:
        extras += [("warmup", warmup), ("runs", runs)]
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
    """Parse and check a schema-1 result JSON of either mode; InstrumentationFailed when it is not one."""
    try:
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InstrumentationFailed(f"result is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise InstrumentationFailed("result is not a JSON object")
    mode = obj.get("mode", "timing")
    if mode not in MODES:
        raise InstrumentationFailed(f"result mode {mode!r} is not one of {', '.join(MODES)}")
    missing = [k for k in (ACCURACY_REQUIRED_KEYS if mode == "accuracy" else REQUIRED_KEYS) if k not in obj]
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


def base_accuracy_result(model: str, *, inputs: str, outputs: str, delegate: str, threads: int | None) -> dict:
    """An accuracy-mode result with every key present and nothing run yet (status 'error')."""
    return {
        "schema": SCHEMA,
        "mode": "accuracy",
        "status": "error",
        "error": None,
        "model": model,
        "inputs": inputs,
        "outputs": outputs,
        "delegate_requested": delegate,
        "delegate_applied": None,
        "fallback": False,
        "threads": threads,
        "init_ms": None,
        "samples": 0,
        "samples_ms": [],
        "output_tensors": [],
        "peak_memory_kb": None,
        "runtime": "litert",
        "runtime_version": None,
        "app_version": APP_VERSION,
        "device": {},
    }


# --- accuracy mode: input sets and .npy tensor files ---------------------------------------------------------


def input_set(files: Sequence[Path]) -> tuple[str, dict[str, str]]:
    """(digest of the set, {file name: sha256}) of input tensor files; BadInput for names the device cannot take
    (letters, digits, `._-`, ending in `.npy`), a name used twice, or more than MAX_SAMPLES files."""
    from blitzmask_deploy.core.artifacts import sha256_file  # not at module level: `blitzmask devices` starts fast

    if not files:
        raise BadInput("no input tensor files")
    if len(files) > MAX_SAMPLES:
        raise BadInput(f"{len(files)} input tensor files: at most {MAX_SAMPLES} per set")
    shas: dict[str, str] = {}
    for path in files:
        name = Path(path).name
        if not _TENSOR_NAME.fullmatch(name):
            raise BadInput(f"input tensor file name {name!r}: use letters, digits, '._-' and end in .npy")
        if name in shas:
            raise BadInput(f"two input tensor files named {name}")
        shas[name] = sha256_file(Path(path))
    return input_set_digest(shas), shas


def input_set_digest(shas: dict[str, str]) -> str:
    """sha256 of the set's `sha256sum` listing sorted by name ("<sha256>  <name>\\n" per file)."""
    listing = "".join(f"{shas[name]}  {name}\n" for name in sorted(shas))
    return hashlib.sha256(listing.encode()).hexdigest()


def save_tensor(path: Path, array: np.ndarray) -> None:
    """Write one tensor as a .npy file the app reads (version 1.0, little-endian, C order, no pickle)."""
    import numpy as np

    dtype = np.dtype(array.dtype)
    if dtype.name not in TENSOR_DTYPES:
        raise ValueError(f"dtype {dtype} is not one of {', '.join(TENSOR_DTYPES)}")
    np.save(path, np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")), allow_pickle=False)


def load_tensor(source: Path | bytes, name: str | None = None) -> np.ndarray:
    """Read one .npy tensor (never unpickling); ValueError naming the file when it is not one of TENSOR_DTYPES."""
    import numpy as np

    name = name or str(source)
    try:
        array = np.load(source if isinstance(source, Path) else io.BytesIO(source), allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{name}: not a readable .npy tensor ({str(err).splitlines()[0]})") from None
    if not isinstance(array, np.ndarray) or array.dtype.name not in TENSOR_DTYPES:
        raise ValueError(f"{name}: dtype {getattr(array, 'dtype', type(array).__name__)} is not a tensor dtype")
    return array


def collect_outputs(result: dict, files: Iterable[tuple[str, bytes]]) -> dict[str, list[np.ndarray]]:
    """{input stem: [output tensor 0, 1, …]} from the `<stem>.<index>.npy` files of an accuracy run, checked
    against the result's `samples` and `output_tensors` (InstrumentationFailed when they disagree)."""
    specs = result["output_tensors"]
    grouped: dict[str, dict[int, np.ndarray]] = {}
    for name, data in files:
        stem, _, index = name.removesuffix(".npy").rpartition(".")
        if not name.endswith(".npy") or not stem or not index.isdigit():
            raise InstrumentationFailed(f"unexpected output file {name!r}")
        try:
            array = load_tensor(data, name)
        except ValueError as err:
            raise InstrumentationFailed(str(err)) from None
        spec = specs[int(index)] if int(index) < len(specs) else None
        if spec is None or array.dtype.name != spec["dtype"] or list(array.shape) != spec["shape"]:
            raise InstrumentationFailed(f"output file {name} ({array.dtype} {array.shape}) does not match {spec}")
        grouped.setdefault(stem, {})[int(index)] = array
    incomplete = sorted(stem for stem, outs in grouped.items() if len(outs) != len(specs))
    if len(grouped) != result["samples"] or incomplete:
        raise InstrumentationFailed(
            f"outputs of {len(grouped)} samples ({result['samples']} run), incomplete: {', '.join(incomplete[:5])}"
        )
    return {stem: [grouped[stem][i] for i in range(len(specs))] for stem in sorted(grouped)}
