"""The `local` device: this host running the app ↔ driver protocol with ai-edge-litert (cpu / xnnpack only).

Timing: the input tensor is filled once with random values of its dtype; `first_inference_ms` is the first
`invoke()` after `allocate_tensors()`, then `warmup` untimed runs, then `runs` timed `invoke()` calls
(`runs_ms`). `init_ms` covers interpreter creation + allocate_tensors. Peak memory is this process's VmHWM.

Accuracy: `run_local_accuracy` does what the app's accuracy mode does, on tensor packs of the host.
"""

from __future__ import annotations

import importlib.metadata
import platform
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from blitzmask_deploy.bench.protocol import (
    MAX_SAMPLES,
    TENSOR_DTYPES,
    base_accuracy_result,
    base_result,
    collect_outputs,
    pack_count,
    read_pack,
    remote_outputs_path,
    write_pack,
)
from blitzmask_deploy.bench.thermal import read_clocks, read_thermal_zones, wait_for_cooldown
from blitzmask_deploy.core.errors import BadInput

if TYPE_CHECKING:
    import numpy as np

LOCAL_SERIAL = "local"
LOCAL_DELEGATES = ("cpu", "xnnpack")
THROTTLE_RATIO = 0.9


def peak_memory_kb() -> int:
    """Peak resident memory of this process in kB (VmHWM; ru_maxrss as a fallback)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_local_benchmark(
    model: Path,
    *,
    delegate: str = "xnnpack",
    threads: int = 4,
    warmup: int = 10,
    runs: int = 100,
    cooldown_c: float | None = None,
    sustained_s: float = 0,
    target_fps: float = 30.0,
    thermal_root: Path = Path("/sys/class/thermal"),
    cpufreq_root: Path = Path("/sys/devices/system/cpu"),
    device: dict | None = None,
    cooldown_max_s: float = 300.0,
) -> dict:
    """Benchmark one .tflite on the host; returns the protocol's schema-1 result JSON (never raises for
    model/runtime problems: those come back as status 'error' / 'runtime_missing' / 'unsupported_delegate')."""
    result = base_result(str(model), delegate=delegate, threads=threads, warmup=warmup, runs=runs)
    litert = _host_runtime(result, delegate, device)
    if litert is None:
        return result
    if cooldown_c is not None:
        wait_for_cooldown(lambda: read_thermal_zones(thermal_root), cooldown_c, cooldown_max_s)
    result["thermal_before"] = read_thermal_zones(thermal_root)
    result["clocks_before"] = read_clocks(cpufreq_root)
    try:
        _measure(litert, model, result, delegate, threads, warmup, runs)
        if sustained_s > 0:
            result["sustained"] = _sustained(result.pop("_interp"), sustained_s, target_fps, cpufreq_root, result)
    except (ValueError, RuntimeError, OSError) as err:
        result.update(status="error", error=f"{type(err).__name__}: {err}".splitlines()[0])
    result.pop("_interp", None)
    result["thermal_after"] = read_thermal_zones(thermal_root)
    result["clocks_after"] = read_clocks(cpufreq_root)
    result["peak_memory_kb"] = peak_memory_kb()
    return result


def _open(litert, model: Path, result: dict, delegate: str, threads: int):
    """An allocated interpreter for `delegate`; sets `init_ms`, `delegate_applied` and `fallback` of `result`."""
    resolver = (
        litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu" else litert.OpResolverType.AUTO
    )
    t0 = time.perf_counter()
    interp = litert.Interpreter(model_path=str(model), num_threads=threads, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    result["init_ms"] = (time.perf_counter() - t0) * 1e3
    applied = "xnnpack" if any(op["op_name"] == "DELEGATE" for op in interp._get_ops_details()) else "cpu"
    result.update(delegate_applied=applied, fallback=applied != delegate)
    return interp


def _host_runtime(result: dict, delegate: str, device: dict | None) -> Any:
    """The ai-edge-litert interpreter module for a cell on `delegate`, with the result's device and runtime version
    filled in; None (the result's status and error set) when the host lacks the delegate or the runtime."""
    result["device"] = device if device is not None else host_device_info()
    if delegate not in LOCAL_DELEGATES:
        result.update(status="unsupported_delegate", error=f"delegate '{delegate}' is not available on the host")
        return None
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as err:
        result.update(status="runtime_missing", error=f"ai-edge-litert is not installed: {err}")
        return None
    result["runtime_version"] = importlib.metadata.version("ai-edge-litert")
    return litert


def _measure(litert, model: Path, result: dict, delegate: str, threads: int, warmup: int, runs: int) -> None:
    interp = _open(litert, model, result, delegate, threads)
    import numpy as np  # not at module level: `blitzmask devices` must start without numpy

    rng = np.random.default_rng(0)
    for spec in interp.get_input_details():
        interp.set_tensor(spec["index"], _random_input(rng, spec["shape"], spec["dtype"]))
    t0 = time.perf_counter()
    interp.invoke()
    result["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        interp.invoke()
    runs_ms = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        interp.invoke()
        runs_ms.append((time.perf_counter_ns() - t0) / 1e6)
    result.update(runs_ms=runs_ms, status="ok", _interp=interp)


def run_local_accuracy(
    model: Path,
    inputs: Path,
    outputs: Path,
    *,
    delegate: str = "xnnpack",
    threads: int = 4,
    device: dict | None = None,
) -> dict:
    """Accuracy mode on the host, as the app runs it: every tensor of the input pack `inputs`, in pack order, through
    `model`, each output tensor written raw to the output pack `outputs` as `<input name>.<output index>` → the
    accuracy result JSON (never raises for model, runtime or input problems: those come back as a status with one
    line naming the input)."""
    result = base_accuracy_result(str(model), inputs=str(inputs), outputs=str(outputs), delegate=delegate,
                                  threads=threads)  # fmt: skip
    litert = _host_runtime(result, delegate, device)
    if litert is None:
        return result
    try:
        _run_inputs(litert, model, inputs, outputs, result, delegate, threads)
    except (ValueError, RuntimeError, OSError) as err:
        result.update(status="error", error=str(err).splitlines()[0] if str(err) else type(err).__name__)
    result["peak_memory_kb"] = peak_memory_kb()
    return result


def _input_count(pack: Path) -> int:
    if not pack.is_file():
        raise ValueError(f"input pack not found: {pack}")
    count = pack_count(pack)
    if not 0 < count <= MAX_SAMPLES:
        raise ValueError(f"{count} inputs in {pack.name}: 1 to {MAX_SAMPLES} per request")
    return count


def _run_inputs(litert, model: Path, inputs: Path, outputs: Path, result: dict, delegate: str, threads: int):
    if not model.is_file():
        raise ValueError(f"model not found or unreadable: {model}")
    count = _input_count(inputs)
    interp = _open(litert, model, result, delegate, threads)
    specs = interp.get_output_details()
    result["output_tensors"] = [
        {"index": i, "name": d["name"], "dtype": d["dtype"].__name__, "shape": [int(n) for n in d["shape"]]}
        for i, d in enumerate(specs)
    ]
    if len(interp.get_input_details()) != 1:
        raise ValueError(f"accuracy mode needs a model with one input; {model} has {len(interp.get_input_details())}")
    for i, out in enumerate(result["output_tensors"]):
        if out["dtype"] not in TENSOR_DTYPES:
            raise ValueError(f"output {i} ({out['name']}) is {out['dtype']}, which accuracy mode cannot write")
    want = interp.get_input_details()[0]

    def run() -> Iterator[tuple[str, np.ndarray]]:
        for name, array in read_pack(inputs):
            if array.dtype != want["dtype"] or list(array.shape) != [int(n) for n in want["shape"]]:
                raise ValueError(
                    f"{name}: {_describe(array.dtype, array.shape)} does not match the model's input "
                    f"{_describe(want['dtype'], want['shape'])}"
                )
            interp.set_tensor(want["index"], array)
            t0 = time.perf_counter_ns()
            interp.invoke()
            result["samples_ms"].append((time.perf_counter_ns() - t0) / 1e6)
            result["samples"] = len(result["samples_ms"])
            for i, spec in enumerate(specs):
                yield f"{name}.{i}", interp.get_tensor(spec["index"])

    outputs.parent.mkdir(parents=True, exist_ok=True)
    write_pack(outputs, count * len(specs), run())
    result["status"] = "ok"


def _describe(dtype, shape) -> str:
    """A dtype and shape as the app writes them: int8 (1, 64, 64, 3)."""
    import numpy as np

    return f"{np.dtype(dtype).name} {tuple(int(n) for n in shape)}"


def _random_input(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    import numpy as np

    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 255) + 1, size=shape, dtype=dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    return rng.random(shape, dtype=np.float32).astype(dtype)


def _sustained(interp, seconds: float, target_fps: float, cpufreq_root: Path, result: dict) -> dict:
    """Run at `target_fps` for `seconds` (sleeping to each frame deadline); clocks sampled about once a second."""
    before = _mean_clock(result["clocks_before"])
    period = 1.0 / target_fps
    ratios: list[float] = []
    frames = 0
    start = next_frame = next_sample = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        if now < next_frame:
            time.sleep(next_frame - now)
        interp.invoke()
        frames += 1
        next_frame += period
        if time.perf_counter() >= next_sample and before:
            current = _mean_clock(read_clocks(cpufreq_root))
            if current:
                ratios.append(current / before)
            next_sample += 1.0
    elapsed = time.perf_counter() - start
    ratio = min(ratios) if ratios else None
    return {
        "seconds": seconds,
        "target_fps": target_fps,
        "frames": frames,
        "achieved_fps": frames / elapsed if elapsed > 0 else 0.0,
        "throttled": ratio is not None and ratio < THROTTLE_RATIO,
        "clocks_min_ratio": ratio,
    }


def _mean_clock(clocks: dict) -> float | None:
    values = [v for k, v in clocks.items() if k.startswith("cpu") and v]
    return sum(values) / len(values) if values else None


def host_device_info() -> dict:
    """The protocol's `device` record for this host."""
    cpu = _cpu_model()
    return {
        "fingerprint": f"host/{platform.node()}/{platform.system()}-{platform.release()}/{platform.machine()}",
        "model": cpu or platform.machine(),
        "manufacturer": "host",
        "soc": cpu,
        "android": None,
        "sdk": None,
        "abi": platform.machine(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


class LocalDevice:
    """This host as a benchmark device (serial 'local'): the same protocol through bench.local.

    Accuracy mode reads input packs in place and writes its output packs into `workdir` (default: a temporary folder
    removed with the object)."""

    kind = "local"
    serial = LOCAL_SERIAL
    adb_server = None

    def __init__(
        self,
        *,
        thermal_root: Path = Path("/sys/class/thermal"),
        cpufreq_root: Path = Path("/sys/devices/system/cpu"),
        workdir: Path | None = None,
    ) -> None:
        self.thermal_root = thermal_root
        self.cpufreq_root = cpufreq_root
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def workdir(self) -> Path:
        """Where the output packs of accuracy mode are written (and removed once read)."""
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="blitzmask-local-")
            self._workdir = Path(self._tmp.name)
        return self._workdir

    def alive(self) -> bool:
        """Always reachable."""
        return True

    def info(self) -> dict:
        """The host's device record."""
        return host_device_info()

    def thermal(self) -> dict[str, float]:
        """{zone type: °C} of the host ({} when it has no thermal zones)."""
        return read_thermal_zones(self.thermal_root)

    def ensure_app(self, apk: Path | None) -> int:
        """Nothing to install on the host."""
        return 0

    def prepare(self, model: Path, sha256: str) -> str:
        """The model is used in place."""
        return str(model)

    def run(self, remote_model: str, *, cell_key: str, **settings: Any) -> dict:
        """Run one cell with ai-edge-litert on the host."""
        return run_local_benchmark(
            Path(remote_model), thermal_root=self.thermal_root, cpufreq_root=self.cpufreq_root, **settings
        )

    def push_inputs(self, pack: Path, sha256: str) -> str:
        """The input pack is used in place (BadInput when its sha256 is not `sha256`)."""
        from blitzmask_deploy.core.artifacts import sha256_file  # not at module level: `blitzmask devices` starts fast

        if sha256_file(pack) != sha256:
            raise BadInput(f"input pack {pack} does not have the sha256 {sha256}")
        return str(pack)

    def run_accuracy(
        self, remote_model: str, remote_inputs: str, *, cell_key: str, delegate: str, threads: int
    ) -> tuple[dict, dict[str, list[np.ndarray]]]:
        """Accuracy mode on the host → (result JSON, {input name: [output tensors]}; {} unless status ok)."""
        outputs = self.workdir / PurePosixPath(remote_outputs_path(cell_key)).name  # a hex key only
        try:
            result = run_local_accuracy(
                Path(remote_model), Path(remote_inputs), outputs, delegate=delegate, threads=threads
            )
            if result["status"] != "ok":
                return result, {}
            return result, collect_outputs(result, read_pack(outputs))
        finally:
            outputs.unlink(missing_ok=True)
