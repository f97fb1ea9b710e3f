"""Compute-bound latency estimate: the model's GMACs against the peak throughput of the device that ran it.

One MAC is two operations. `bound_ms = 2 · GMACs / peak GOPS · 1000` is the latency the device could reach if
every unit were busy on the model's convolutions; measured latency over it shows how far the run is from that
ceiling (memory traffic, small-kernel overheads, delegate dispatch). The peaks are order-of-magnitude figures:

- local host: threads × clock × operations per cycle and core from this machine's CPU flags (AVX-512: 64 fp32
  ops, AVX2+FMA: 32, otherwise 8; int8 ×2, ×4 with VNNI; fp16 runs as fp32 on x86). The clock is the one the
  benchmark recorded (`clocks_before`), else this machine's current one.
- phones: a small table of vendor-quoted peaks for known SoCs, else a generic arm64 figure per delegate class
  (CPU: 2.4 GHz × 16 fp32 ops per core and thread, fp16 ×2, int8 ×4 with dot-product instructions;
  GPU: 1.7 TFLOPS fp32, fp16 ×2; NPU/DSP: 15 TOPS int8, fp16 ÷2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from blitzmask_deploy.report.results import Row

# (SoC substrings, delegate class) → (peak GOPS per precision, label); vendor-quoted, approximate.
_KNOWN: list[tuple[tuple[str, ...], str, dict[str, float], str]] = [
    (("sm8350", "lahaina", "snapdragon 888"), "gpu", {"fp32": 1720, "fp16": 3440}, "Adreno 660"),
    (("sm8350", "lahaina", "snapdragon 888"), "npu", {"int8": 26000, "fp16": 13000}, "Hexagon 780 AI Engine"),
    (("exynos2100", "s5e9840", "exynos 2100"), "gpu", {"fp32": 765, "fp16": 1530}, "Mali-G78 MP14"),
    (("exynos2100", "s5e9840", "exynos 2100"), "npu", {"int8": 26000, "fp16": 13000}, "Exynos 2100 NPU+DSP"),
]
_GENERIC = {
    "cpu": ({"fp32": 38.4, "fp16": 76.8, "int8": 153.6}, "generic arm64 core (per thread)"),
    "gpu": ({"fp32": 1700, "fp16": 3400, "int8": 3400}, "generic mobile GPU"),
    "npu": ({"int8": 15000, "fp16": 7500, "fp32": 7500}, "generic NPU/DSP"),
}


@dataclass(frozen=True)
class Roofline:
    """The estimate for one benchmarked cell."""

    gmacs: float
    peak_gops: float
    peak_source: str
    measured_ms: float

    @property
    def bound_ms(self) -> float:
        """Latency if the device ran at its peak on the model's MACs."""
        return 2.0 * self.gmacs / self.peak_gops * 1000.0

    @property
    def achieved_gops(self) -> float:
        """Operations per second reached at the measured p50."""
        return 2.0 * self.gmacs / (self.measured_ms / 1000.0)

    @property
    def utilisation(self) -> float:
        """Achieved over peak throughput (0–1)."""
        return self.achieved_gops / self.peak_gops


def delegate_class(delegate: str | None) -> str:
    """'cpu' for cpu/xnnpack, 'gpu', or 'npu' for nnapi/qnn/dsp."""
    d = (delegate or "cpu").lower()
    if d in ("gpu", "opencl", "opengl"):
        return "gpu"
    if d in ("nnapi", "qnn", "dsp", "npu", "hexagon"):
        return "npu"
    return "cpu"


def host_ops_per_cycle(flags: set[str], precision: str) -> float:
    """Peak operations per cycle and core of an x86 CPU with these /proc/cpuinfo flags."""
    if "avx512f" in flags:
        fp32 = 64.0
    elif "avx2" in flags and "fma" in flags:
        fp32 = 32.0
    else:
        fp32 = 8.0
    if precision == "int8":
        return fp32 * (4.0 if {"avx512_vnni", "avx_vnni"} & flags else 2.0)
    return fp32


def _cpuinfo(cpuinfo: Path) -> tuple[set[str], float | None]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set(), None
    flags: set[str] = set()
    mhz: float | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "cpu MHz" and mhz is None:
            try:
                mhz = float(value)
            except ValueError:
                mhz = None
    return flags, mhz


def _recorded_ghz(row: Row) -> float | None:
    khz = [v for k, v in row.clocks_before.items() if k.startswith("cpu") and isinstance(v, int | float) and v > 0]
    return max(khz) / 1e6 if khz else None


def device_peak(row: Row, *, cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[float, str] | None:
    """(peak GOPS, where the figure comes from) for the cell's device, delegate, precision and threads."""
    cls = delegate_class(row.delegate)
    precision = row.precision if row.precision in ("fp32", "fp16", "int8") else "fp32"
    threads = max(1, row.threads or 1)
    if row.device_serial == "local":
        flags, mhz = _cpuinfo(cpuinfo)
        ghz = _recorded_ghz(row) or (mhz / 1000.0 if mhz else None)
        if not flags or not ghz:
            return None
        cores = min(threads, os.cpu_count() or threads)
        peak = cores * ghz * host_ops_per_cycle(flags, precision)
        return peak, f"host CPU {cores} cores × {ghz:.2f} GHz × {host_ops_per_cycle(flags, precision):.0f} ops/cycle"
    soc = f"{row.soc or ''} {row.device or ''}".lower()
    for keys, klass, peaks, label in _KNOWN:
        if klass == cls and precision in peaks and any(k in soc for k in keys):
            return peaks[precision], label
    peaks, label = _GENERIC[cls]
    if cls == "cpu":
        return peaks[precision] * threads, f"{label} × {threads}"
    return peaks[precision], label


def estimate(row: Row, *, cpuinfo: Path = Path("/proc/cpuinfo")) -> Roofline | None:
    """The roofline estimate of a benchmarked row; None without GMACs, latency or a peak figure."""
    if row.gmacs is None or row.p50_ms is None or row.p50_ms <= 0:
        return None
    peak = device_peak(row, cpuinfo=cpuinfo)
    if peak is None:
        return None
    return Roofline(gmacs=row.gmacs, peak_gops=peak[0], peak_source=peak[1], measured_ms=row.p50_ms)
