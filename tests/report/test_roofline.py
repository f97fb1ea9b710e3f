"""Roofline estimate: device peaks (host from CPU flags, phones from the table) and the derived figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from blitzmask_deploy.report.plots import pareto_front
from blitzmask_deploy.report.results import Row
from blitzmask_deploy.report.roofline import delegate_class, device_peak, estimate, host_ops_per_cycle


def _row(**kw: object) -> Row:
    base = {"variant": "v", "name": "tflite-fp32", "file": "m.tflite", "format": "tflite", "precision": "fp32"}
    return Row(**{**base, "sha256": "0" * 64, "status": "done", **kw})  # type: ignore[arg-type]


def _cpuinfo(tmp_path: Path, flags: str, mhz: float = 2000.0) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return path


def test_host_ops_per_cycle_follows_vector_width() -> None:
    assert host_ops_per_cycle({"sse2"}, "fp32") == 8
    assert host_ops_per_cycle({"avx2", "fma"}, "fp32") == 32
    assert host_ops_per_cycle({"avx512f", "avx2", "fma"}, "fp32") == 64
    assert host_ops_per_cycle({"avx2", "fma"}, "int8") == 64
    assert host_ops_per_cycle({"avx2", "fma", "avx_vnni"}, "int8") == 128
    assert host_ops_per_cycle({"avx2", "fma"}, "fp16") == 32


def test_local_peak_uses_recorded_clock_else_cpuinfo(tmp_path: Path) -> None:
    info = _cpuinfo(tmp_path, "fpu avx2 fma", mhz=2000.0)
    recorded = _row(device_serial="local", threads=1, clocks_before={"cpu0": 3_000_000, "gpu": None})
    peak, source = device_peak(recorded, cpuinfo=info)  # type: ignore[misc]
    assert peak == pytest.approx(3.0 * 32)
    assert "3.00 GHz" in source
    unrecorded = _row(device_serial="local", threads=1)
    assert device_peak(unrecorded, cpuinfo=info)[0] == pytest.approx(2.0 * 32)  # type: ignore[index]
    assert device_peak(unrecorded, cpuinfo=tmp_path / "missing") is None


def test_phone_peaks_known_soc_and_generic() -> None:
    s21_gpu = _row(device_serial="R5CR", device="SM-G991B", soc="SM8350", delegate="gpu", precision="fp16")
    assert device_peak(s21_gpu) == (3440, "Adreno 660")
    unknown_cpu = _row(device_serial="X", device="Pixel", soc="Tensor", delegate="xnnpack", threads=4)
    assert device_peak(unknown_cpu)[0] == pytest.approx(4 * 38.4)  # type: ignore[index]
    assert delegate_class("qnn") == "npu" and delegate_class("xnnpack") == "cpu" and delegate_class("gpu") == "gpu"


def test_estimate_figures() -> None:
    row = _row(device_serial="R5CR", soc="lahaina", delegate="gpu", p50_ms=10.0, gmacs=8.6)
    est = estimate(row)
    assert est is not None
    assert est.bound_ms == pytest.approx(2 * 8.6 / 1720 * 1000)
    assert est.achieved_gops == pytest.approx(2 * 8.6 / 0.010)
    assert est.utilisation == pytest.approx(est.achieved_gops / 1720)
    assert estimate(_row(device_serial="R5CR", delegate="gpu", p50_ms=10.0)) is None  # no GMACs
    assert estimate(_row(device_serial="R5CR", delegate="gpu", gmacs=1.0)) is None  # no latency


def test_pareto_front_keeps_only_non_dominated_points() -> None:
    points = [(10.0, 30.0), (20.0, 29.0), (15.0, 28.0), (40.0, 25.0), (5.0, 30.0), (40.0, 20.0)]
    assert pareto_front(points) == [(10.0, 30.0), (20.0, 29.0), (40.0, 25.0)]
