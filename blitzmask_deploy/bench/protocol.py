"""The app ↔ driver protocol, schema 1 (see docs/benchmarking.md): command line, device paths, result parsing,
and the tensor packs of accuracy mode (named `.npy` tensors in one file).

Every argument that goes into a device shell command is quoted with `shlex.quote`; model files and input packs
live at content-addressed paths, so a hostile local file name never reaches the device shell.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shlex
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from blitzmask_deploy.bench.errors import InstrumentationFailed

if TYPE_CHECKING:
    import numpy as np

SCHEMA = 1
APP_VERSION = "0.3.0"
APP_VERSION_CODE = 3  # the app this driver speaks; accuracy mode reads and writes tensor packs since versionCode 3
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
MAX_SAMPLES = 20000  # inputs per accuracy request (the app's limit: one binder transaction)
PACK_MAGIC = b"\x93BMPACK"
PACK_VERSION = 1
_PACK_HEADER = struct.Struct("<7sBI")  # magic, version, number of records
_RECORD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


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


def remote_inputs_path(sha256: str) -> str:
    """Where the input pack with this sha256 lives on the device."""
    _check_hex(sha256)
    return f"{REMOTE_ROOT}/inputs/{sha256}.pack"


def remote_outputs_path(cell_key: str) -> str:
    """Where the app writes the output pack of one accuracy cell."""
    _check_hex(cell_key)
    return f"{REMOTE_ROOT}/outputs/{cell_key}.pack"


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
    runs every tensor of the device's input pack `inputs` and writes the output tensors into the pack `outputs`."""
    if delegate not in DELEGATES:
        raise ValueError(f"unknown delegate {delegate!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    extras: list[tuple[str, object]] = [("model", model), ("delegate", delegate), ("threads", threads)]
    if mode == "accuracy":
        if not inputs or not outputs:
            raise ValueError("accuracy mode needs an inputs and an outputs pack")
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


# --- accuracy mode: tensor packs -------------------------------------------------------------------------------


def write_pack(path: Path, count: int, tensors: Iterable[tuple[str, np.ndarray]]) -> str:
    """Write `count` named tensors as one tensor pack (version PACK_VERSION, docs/benchmarking.md) → its sha256.

    ValueError for a name the device cannot take (letters, digits, `._-`, at most 200), a name used twice, a dtype
    that is not one of TENSOR_DTYPES, or another number of tensors than `count` (the file is then incomplete)."""
    import numpy as np

    if not 0 <= count < 2**32:
        raise ValueError(f"a tensor pack holds 0 to {2**32 - 1} tensors, not {count}")
    digest = hashlib.sha256()
    names: set[str] = set()
    with Path(path).open("wb") as out:

        def put(data: bytes) -> None:
            out.write(data)
            digest.update(data)

        put(_PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, count))
        for name, array in tensors:
            if not _RECORD_NAME.fullmatch(name):
                raise ValueError(f"tensor name {name!r}: use letters, digits and '._-' (at most 200)")
            if name in names:
                raise ValueError(f"two tensors named {name}")
            if len(names) == count:
                raise ValueError(f"more than the {count} tensors the pack was opened for")
            names.add(name)
            dtype = np.dtype(array.dtype)
            if dtype.name not in TENSOR_DTYPES:
                raise ValueError(f"{name}: dtype {dtype} is not one of {', '.join(TENSOR_DTYPES)}")
            record = io.BytesIO()
            little = np.asarray(array, dtype=dtype.newbyteorder("<"), order="C")  # 0-d stays 0-d
            np.lib.format.write_array(record, little, version=(1, 0), allow_pickle=False)
            put(struct.pack("<H", len(name)) + name.encode("ascii") + record.getvalue())
    if len(names) != count:
        raise ValueError(f"{len(names)} tensors written, the pack was opened for {count}")
    return digest.hexdigest()


def pack_count(path: Path) -> int:
    """The number of tensors a pack's header announces; ValueError naming the file when it is not a tensor pack."""
    with Path(path).open("rb") as source:
        return _read_pack_header(source, path)


def read_pack(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, tensor) of every record of a tensor pack, in file order (never unpickling); ValueError naming the file
    and the record when it is not a complete pack of TENSOR_DTYPES tensors."""
    with Path(path).open("rb") as source:
        count = _read_pack_header(source, path)
        for i in range(count):
            where = f"{Path(path).name}: record {i}"
            size = source.read(2)
            name_bytes = source.read(struct.unpack("<H", size)[0]) if len(size) == 2 else b""
            name = name_bytes.decode("ascii", "replace")
            if not _RECORD_NAME.fullmatch(name):
                raise ValueError(f"{where}: truncated, or a bad tensor name {name!r}")
            yield name, _read_npy(source, f"{where} ({name})")
        if source.read(1):
            raise ValueError(f"{Path(path).name}: bytes after its {count} records")


def _read_pack_header(source: BinaryIO, path: Path) -> int:
    header = source.read(_PACK_HEADER.size)
    if len(header) != _PACK_HEADER.size or not header.startswith(PACK_MAGIC):
        raise ValueError(f"{Path(path).name}: not a tensor pack")
    _, version, count = _PACK_HEADER.unpack(header)
    if version != PACK_VERSION:
        raise ValueError(f"{Path(path).name}: tensor pack version {version}, this driver reads {PACK_VERSION}")
    return count


def _read_npy(source: BinaryIO, where: str) -> np.ndarray:
    """One .npy version-1.0 record of TENSOR_DTYPES, little-endian, C order, read from the current position."""
    import numpy as np

    try:
        version = np.lib.format.read_magic(source)
        if version != (1, 0):
            raise ValueError(f".npy version {version[0]}.{version[1]} (1.0 only)")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(source)
    except ValueError as err:
        raise ValueError(f"{where}: not a readable .npy tensor ({str(err).splitlines()[0]})") from None
    if dtype.name not in TENSOR_DTYPES or dtype.byteorder == ">":
        raise ValueError(f"{where}: dtype '{dtype.str}' is not one of {', '.join(TENSOR_DTYPES)} (little-endian)")
    if fortran:
        raise ValueError(f"{where}: Fortran order (tensors are in C order)")
    data = bytearray(dtype.itemsize * math.prod(shape))
    if source.readinto(data) != len(data):
        raise ValueError(f"{where}: truncated")
    return np.frombuffer(data, dtype).reshape(shape)


def collect_outputs(result: dict, records: Iterable[tuple[str, np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """{input name: [output tensor 0, 1, …]} from the `<input name>.<output index>` records of an accuracy run's
    output pack, checked against the result's `samples` and `output_tensors` (InstrumentationFailed when they
    disagree or the pack is not one)."""
    specs = result["output_tensors"]
    grouped: dict[str, dict[int, np.ndarray]] = {}
    try:
        for name, array in records:
            stem, _, index = name.rpartition(".")
            if not stem or not index.isdigit():
                raise InstrumentationFailed(f"unexpected output tensor {name!r}")
            spec = specs[int(index)] if int(index) < len(specs) else None
            if spec is None or array.dtype.name != spec["dtype"] or list(array.shape) != spec["shape"]:
                raise InstrumentationFailed(f"output {name} ({array.dtype} {array.shape}) does not match {spec}")
            grouped.setdefault(stem, {})[int(index)] = array
    except ValueError as err:
        raise InstrumentationFailed(f"output pack: {err}") from None
    incomplete = [stem for stem, outs in grouped.items() if len(outs) != len(specs)]
    if len(grouped) != result["samples"] or incomplete:
        raise InstrumentationFailed(
            f"outputs of {len(grouped)} samples ({result['samples']} run), incomplete: {', '.join(incomplete[:5])}"
        )
    return {stem: [outs[i] for i in range(len(specs))] for stem, outs in grouped.items()}
