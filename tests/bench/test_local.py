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
    parse_result,
    read_pack,
    write_pack,
)
from blitzmask_deploy.core.artifacts import sha256_file
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
def _inputs(pack: Path, n: int = 3, dtype: str = "float32", shape: tuple = (1, 64, 64, 3)) -> dict[str, np.ndarray]:
    """`n` random input tensors named s2, s1, s0 written as the pack `pack` → {name: tensor}."""
    rng = np.random.default_rng(7)
    tensors = {f"s{i}": rng.random(shape, dtype=np.float32).astype(dtype) for i in reversed(range(n))}
    pack.parent.mkdir(parents=True, exist_ok=True)
    write_pack(pack, n, iter(tensors.items()))
    return tensors


def _host_outputs(model: Path, tensors: dict[str, np.ndarray], threads: int) -> dict[str, list[np.ndarray]]:
    """The outputs of plain ai-edge-litert (XNNPACK) on the same inputs: the reference."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=threads)
    interp.allocate_tensors()
    (spec,) = interp.get_input_details()
    outs = {}
    for name, x in tensors.items():
        interp.set_tensor(spec["index"], x)
        interp.invoke()
        outs[name] = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    return outs


def test_local_accuracy_writes_each_output_like_the_app(bench_tflite: Path, tmp_path: Path) -> None:
    tensors = _inputs(tmp_path / "in.pack")
    res = run_local_accuracy(bench_tflite, tmp_path / "in.pack", tmp_path / "out" / "o.pack", delegate="xnnpack",
                             threads=2)  # fmt: skip
    assert res["status"] == "ok", res["error"]
    keys = base_accuracy_result("m", inputs="i", outputs="o", delegate="cpu", threads=1)
    assert parse_result(json.dumps(res)) == res and list(res) == list(keys)
    assert (res["mode"], res["samples"], len(res["samples_ms"])) == ("accuracy", 3, 3)
    assert res["delegate_applied"] == "xnnpack" and res["fallback"] is False and res["init_ms"] > 0
    assert res["output_tensors"] == [
        {"index": 0, "name": "serving_default_output_0_output", "dtype": "float32", "shape": [1, 64, 64, 8]}
    ]
    outputs = list(read_pack(tmp_path / "out" / "o.pack"))
    assert [name for name, _ in outputs] == ["s2.0", "s1.0", "s0.0"]  # in the input pack's order
    reference = _host_outputs(bench_tflite, tensors, threads=2)
    assert all(np.array_equal(got, reference[name.removesuffix(".0")][0]) for name, got in outputs)


def test_local_accuracy_errors_name_the_input(bench_tflite: Path, tmp_path: Path) -> None:
    _inputs(tmp_path / "in.pack", n=2)
    _inputs(tmp_path / "in2.pack", n=1, dtype="float16")
    _inputs(tmp_path / "in3.pack", n=1, shape=(64, 64, 3))
    write_pack(tmp_path / "empty.pack", 0, iter([]))
    cases = {
        tmp_path / "nope.pack": "input pack not found",
        tmp_path / "empty.pack": "0 inputs in empty.pack: 1 to 20000 per request",
        tmp_path / "in2.pack": "s0: float16 (1, 64, 64, 3) does not match the model's input float32 (1, 64, 64, 3)",
        tmp_path / "in3.pack": "s0: float32 (64, 64, 3) does not match",
    }
    out = tmp_path / "out.pack"
    for pack, message in cases.items():
        res = run_local_accuracy(bench_tflite, pack, out, delegate="cpu", threads=1)
        assert res["status"] == "error" and message in res["error"], res["error"]
    data = (tmp_path / "in.pack").read_bytes()
    (tmp_path / "cut.pack").write_bytes(data[: len(data) - 100])
    res = run_local_accuracy(bench_tflite, tmp_path / "cut.pack", out, delegate="cpu", threads=1)
    assert res["error"] == "cut.pack: record 1 (s0): truncated" and res["samples"] == 1
    res = run_local_accuracy(tmp_path / "none.tflite", tmp_path / "in.pack", out, delegate="cpu", threads=1)
    assert "model not found" in res["error"]


def test_local_accuracy_unsupported_delegate_and_missing_runtime(
    bench_tflite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inputs(tmp_path / "in.pack", n=1)
    gpu = run_local_accuracy(bench_tflite, tmp_path / "in.pack", tmp_path / "out.pack", delegate="gpu", threads=1)
    assert gpu["status"] == "unsupported_delegate" and "gpu" in gpu["error"] and gpu["samples"] == 0
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    missing = run_local_accuracy(bench_tflite, tmp_path / "in.pack", tmp_path / "out.pack", delegate="cpu", threads=1)
    assert missing["status"] == "runtime_missing" and "ai-edge-litert" in missing["error"]
    assert not (tmp_path / "out.pack").exists()


def test_local_device_accuracy(bench_tflite: Path, tmp_path: Path) -> None:
    tensors = _inputs(tmp_path / "in.pack", n=2)
    dev = LocalDevice(workdir=tmp_path / "work")
    remote = dev.push_inputs(tmp_path / "in.pack", sha256_file(tmp_path / "in.pack"))
    assert remote == str(tmp_path / "in.pack")  # read in place
    res, outputs = dev.run_accuracy(str(bench_tflite), remote, cell_key="ab" * 16, delegate="xnnpack", threads=1)
    assert res["status"] == "ok" and list(outputs) == ["s1", "s0"]
    reference = _host_outputs(bench_tflite, tensors, threads=1)
    assert all(np.array_equal(outputs[s][0], reference[s][0]) for s in reference)
    assert list((tmp_path / "work").iterdir()) == []  # the output pack was read, then removed
    gpu, none = dev.run_accuracy(str(bench_tflite), remote, cell_key="cd" * 16, delegate="gpu", threads=1)
    assert gpu["status"] == "unsupported_delegate" and none == {}
    with pytest.raises(BadInput, match="does not have the sha256"):
        dev.push_inputs(tmp_path / "in.pack", "00" * 32)
    with pytest.raises(ValueError):
        dev.run_accuracy(str(bench_tflite), remote, cell_key="../x", delegate="cpu", threads=1)
