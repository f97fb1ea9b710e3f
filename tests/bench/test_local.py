"""The local host device: the protocol run with ai-edge-litert."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from blitzmask_deploy.bench.local import LocalDevice, run_local_benchmark
from blitzmask_deploy.bench.protocol import REQUIRED_KEYS, base_result, parse_result


def _cpufreq(root: Path, khz: int, n: int = 2) -> Path:
    for i in range(n):
        (root / f"cpu{i}" / "cpufreq").mkdir(parents=True, exist_ok=True)
        (root / f"cpu{i}" / "cpufreq" / "scaling_cur_freq").write_text(f"{khz}\n")
    return root


@pytest.mark.parametrize("delegate", ["cpu", "xnnpack"])
def test_local_result_follows_protocol(bench_tflite: Path, tmp_path: Path, delegate: str) -> None:
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("soc\n")
    (zone / "temp").write_text("41000\n")
    cpufreq = _cpufreq(tmp_path / "cpu", 2000000)
    res = run_local_benchmark(
        bench_tflite, delegate=delegate, threads=1, warmup=2, runs=7, thermal_root=tmp_path / "thermal",
        cpufreq_root=cpufreq,
    )  # fmt: skip
    assert res["status"] == "ok", res["error"]
    assert set(base_result("m", delegate="cpu", threads=1, warmup=0, runs=1)) <= set(res)
    assert all(k in res for k in REQUIRED_KEYS) and parse_result(json.dumps(res)) == res
    assert len(res["runs_ms"]) == 7 and all(v > 0 for v in res["runs_ms"])
    assert res["init_ms"] > 0 and res["first_inference_ms"] > 0 and res["peak_memory_kb"] > 10_000
    assert res["delegate_applied"] == delegate and res["fallback"] is False
    assert res["thermal_before"] == {"soc": 41.0} and res["clocks_after"] == {
        "cpu0": 2000000,
        "cpu1": 2000000,
        "gpu": None,
    }
    assert res["device"]["manufacturer"] == "host" and res["runtime_version"]
    assert res["sustained"] is None


def test_xnnpack_is_faster_than_plain_cpu_kernels(bench_tflite: Path) -> None:
    cpu = run_local_benchmark(bench_tflite, delegate="cpu", threads=1, warmup=3, runs=15)
    xnn = run_local_benchmark(bench_tflite, delegate="xnnpack", threads=1, warmup=3, runs=15)
    assert min(xnn["runs_ms"]) < min(cpu["runs_ms"])


@pytest.mark.parametrize("delegate", ["gpu", "nnapi", "qnn"])
def test_other_delegates_are_unsupported(bench_tflite: Path, delegate: str) -> None:
    res = run_local_benchmark(bench_tflite, delegate=delegate, threads=1, warmup=0, runs=1)
    assert res["status"] == "unsupported_delegate" and delegate in res["error"] and res["runs_ms"] == []


def test_broken_model_is_an_error_result(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    res = run_local_benchmark(bad, delegate="cpu", threads=1, warmup=0, runs=1)
    assert res["status"] == "error" and res["error"]


def test_sustained_paces_frames_and_detects_throttling(bench_tflite: Path, tmp_path: Path) -> None:
    cpufreq = _cpufreq(tmp_path / "cpu", 2000000)
    timer = threading.Timer(1.0, _cpufreq, args=(cpufreq, 1000000))  # clocks halve after 1 s
    timer.start()
    t0 = time.perf_counter()
    res = run_local_benchmark(
        bench_tflite, delegate="xnnpack", threads=1, warmup=1, runs=2, sustained_s=2.5, target_fps=20,
        cpufreq_root=cpufreq,
    )  # fmt: skip
    timer.join()
    s = res["sustained"]
    assert time.perf_counter() - t0 >= 2.5
    assert 45 <= s["frames"] <= 52 and s["achieved_fps"] == pytest.approx(20, rel=0.1)
    assert s["throttled"] is True and s["clocks_min_ratio"] == pytest.approx(0.5)


def test_sustained_without_clocks_is_not_throttled(bench_tflite: Path, tmp_path: Path) -> None:
    res = run_local_benchmark(
        bench_tflite, delegate="xnnpack", threads=1, warmup=0, runs=1, sustained_s=0.5, target_fps=30,
        cpufreq_root=tmp_path / "none",
    )  # fmt: skip
    assert res["sustained"]["throttled"] is False and res["sustained"]["clocks_min_ratio"] is None


def test_local_device_interface(bench_tflite: Path, tmp_path: Path) -> None:
    dev = LocalDevice(thermal_root=tmp_path, cpufreq_root=tmp_path)
    assert dev.serial == "local" and dev.alive() and dev.thermal() == {}
    assert dev.info()["fingerprint"].startswith("host/")
    remote = dev.prepare(bench_tflite, "00" * 32)
    res = dev.run(remote, cell_key="ab" * 16, delegate="xnnpack", threads=1, warmup=0, runs=3)
    assert res["status"] == "ok" and len(res["runs_ms"]) == 3
