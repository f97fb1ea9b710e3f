"""The local host device: the protocol run with ai-edge-litert, timing and accuracy mode."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.bench.local import LocalDevice, run_local_accuracy, run_local_benchmark
from blitzmask_deploy.bench.protocol import (
    REQUIRED_KEYS,
    base_accuracy_result,
    base_result,
    input_set,
    parse_result,
    save_tensor,
)
from blitzmask_deploy.core.errors import BadInput


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


# --- accuracy mode ---------------------------------------------------------------------------------------------
def _inputs(folder: Path, n: int = 3, dtype: str = "float32", shape: tuple = (1, 64, 64, 3)) -> list[Path]:
    """`n` random input tensor files named s0.npy, s1.npy, …"""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    files = []
    for i in range(n):
        files.append(folder / f"s{i}.npy")
        save_tensor(files[-1], rng.random(shape, dtype=np.float32).astype(dtype))
    return files


def _host_outputs(model: Path, files: list[Path], threads: int) -> dict[str, list[np.ndarray]]:
    """The outputs of plain ai-edge-litert (XNNPACK) on the same inputs: the reference."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=threads)
    interp.allocate_tensors()
    (spec,) = interp.get_input_details()
    outs = {}
    for path in files:
        interp.set_tensor(spec["index"], np.load(path))
        interp.invoke()
        outs[path.stem] = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    return outs


def test_local_accuracy_writes_each_output_like_the_app(bench_tflite: Path, tmp_path: Path) -> None:
    files = _inputs(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("not an input")
    res = run_local_accuracy(bench_tflite, tmp_path / "in", tmp_path / "out", delegate="xnnpack", threads=2)
    assert res["status"] == "ok", res["error"]
    keys = base_accuracy_result("m", inputs="i", outputs="o", delegate="cpu", threads=1)
    assert parse_result(json.dumps(res)) == res and list(res) == list(keys)
    assert (res["mode"], res["samples"], len(res["samples_ms"])) == ("accuracy", 3, 3)
    assert res["delegate_applied"] == "xnnpack" and res["fallback"] is False and res["init_ms"] > 0
    assert res["output_tensors"] == [
        {"index": 0, "name": "serving_default_output_0_output", "dtype": "float32", "shape": [1, 64, 64, 8]}
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s0.0.npy", "s1.0.npy", "s2.0.npy"]
    reference = _host_outputs(bench_tflite, files, threads=2)
    for stem, (expected,) in reference.items():
        assert np.array_equal(np.load(tmp_path / "out" / f"{stem}.0.npy", allow_pickle=False), expected)


def test_local_accuracy_errors_name_the_file(bench_tflite: Path, tmp_path: Path) -> None:
    _inputs(tmp_path / "in", n=1)
    _inputs(tmp_path / "in2", n=1, dtype="float16")
    shape = _inputs(tmp_path / "in3", n=1, shape=(64, 64, 3))[0]
    cases = {
        tmp_path / "nope": "inputs folder not found",
        tmp_path / "out": "no .npy files in the inputs folder",
        tmp_path / "in2": "s0.npy: float16 (1, 64, 64, 3) does not match the model's input float32 (1, 64, 64, 3)",
        shape.parent: "s0.npy: float32 (64, 64, 3) does not match",
    }
    (tmp_path / "out").mkdir()
    for folder, message in cases.items():
        res = run_local_accuracy(bench_tflite, folder, tmp_path / "out", delegate="cpu", threads=1)
        assert res["status"] == "error" and message in res["error"], res["error"]
    (tmp_path / "in" / "s1.npy").write_bytes(b"garbage")
    res = run_local_accuracy(bench_tflite, tmp_path / "in", tmp_path / "out", delegate="cpu", threads=1)
    assert res["error"].startswith("s1.npy: not a readable .npy tensor") and res["samples"] == 1
    res = run_local_accuracy(tmp_path / "none.tflite", tmp_path / "in", tmp_path / "out", delegate="cpu", threads=1)
    assert "model not found" in res["error"]


def test_local_accuracy_unsupported_delegate_and_missing_runtime(
    bench_tflite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inputs(tmp_path / "in", n=1)
    gpu = run_local_accuracy(bench_tflite, tmp_path / "in", tmp_path / "out", delegate="gpu", threads=1)
    assert gpu["status"] == "unsupported_delegate" and "gpu" in gpu["error"] and gpu["samples"] == 0
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    missing = run_local_accuracy(bench_tflite, tmp_path / "in", tmp_path / "out", delegate="cpu", threads=1)
    assert missing["status"] == "runtime_missing" and "ai-edge-litert" in missing["error"]
    assert not (tmp_path / "out").exists()


def test_local_device_accuracy(bench_tflite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _inputs(tmp_path / "in", n=2)
    digest, _ = input_set(files)
    dev = LocalDevice(workdir=tmp_path / "work")
    remote = dev.push_inputs(files, digest)
    assert sorted(p.name for p in Path(remote).glob("*.npy")) == ["s0.npy", "s1.npy"]
    monkeypatch.setattr("blitzmask_deploy.bench.local.input_set", None)  # a staged set is not looked at again
    assert dev.push_inputs(files, digest) == remote
    res, outputs = dev.run_accuracy(str(bench_tflite), remote, cell_key="ab" * 16, delegate="xnnpack", threads=1)
    assert res["status"] == "ok" and list(outputs) == ["s0", "s1"]
    reference = _host_outputs(bench_tflite, files, threads=1)
    assert all(np.array_equal(outputs[s][0], reference[s][0]) for s in reference)
    assert not (tmp_path / "work" / "outputs" / ("ab" * 16)).exists()  # pulled, then removed
    gpu, none = dev.run_accuracy(str(bench_tflite), remote, cell_key="cd" * 16, delegate="gpu", threads=1)
    assert gpu["status"] == "unsupported_delegate" and none == {}
    monkeypatch.undo()
    with pytest.raises(BadInput, match="does not match its files"):
        LocalDevice(workdir=tmp_path / "w2").push_inputs(files, "00" * 32)
    with pytest.raises(ValueError):
        dev.run_accuracy(str(bench_tflite), remote, cell_key="../x", delegate="cpu", threads=1)
