"""The `local` device: this host running the app ↔ driver protocol with ai-edge-litert (cpu / xnnpack only).

Timing: the input tensor is filled once with random values of its dtype; `first_inference_ms` is the first
`invoke()` after `allocate_tensors()`, then `warmup` untimed runs, then `runs` timed `invoke()` calls
(`runs_ms`). `init_ms` covers interpreter creation + allocate_tensors. Peak memory is this process's VmHWM.
"""

from __future__ import annotations

import importlib.metadata
import platform
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blitzmask_deploy.bench.protocol import base_result
from blitzmask_deploy.bench.thermal import read_clocks, read_thermal_zones, wait_for_cooldown

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
    result["device"] = device if device is not None else host_device_info()
    if delegate not in LOCAL_DELEGATES:
        result.update(status="unsupported_delegate", error=f"delegate '{delegate}' is not available on the host")
        return result
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as err:
        result.update(status="runtime_missing", error=f"ai-edge-litert is not installed: {err}")
        return result
    result["runtime_version"] = importlib.metadata.version("ai-edge-litert")
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


def _measure(litert, model: Path, result: dict, delegate: str, threads: int, warmup: int, runs: int) -> None:
    resolver = (
        litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu" else litert.OpResolverType.AUTO
    )
    t0 = time.perf_counter()
    interp = litert.Interpreter(model_path=str(model), num_threads=threads, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    result["init_ms"] = (time.perf_counter() - t0) * 1e3
    applied = "xnnpack" if any(op["op_name"] == "DELEGATE" for op in interp._get_ops_details()) else "cpu"
    result.update(delegate_applied=applied, fallback=applied != delegate)
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
    """This host as a benchmark device (serial 'local'): the same protocol through bench.local."""

    kind = "local"
    serial = LOCAL_SERIAL
    adb_server = None

    def __init__(
        self,
        *,
        thermal_root: Path = Path("/sys/class/thermal"),
        cpufreq_root: Path = Path("/sys/devices/system/cpu"),
    ) -> None:
        self.thermal_root = thermal_root
        self.cpufreq_root = cpufreq_root

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
