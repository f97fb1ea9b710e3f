"""Export benchmark: time to export blitzmask-b0 at 320 to every format, and host latency of the results.

Figures (2 threads everywhere, as on the 2-core CI host):
- `export_s_total`: wall time of the whole export, calibration included (goal ≤ 120 s), and `export_cpu_s`, the
  CPU time it used (all threads; on a shared host this is the figure that does not depend on other load);
- `latency_ms_p50_*`: median single-image latency of PyTorch eager, fp32/fp16/int8 TFLite (LiteRT, XNNPACK)
  and ONNX Runtime; `speedup_tflite_fp32_vs_torch` (goal ≥ 2) and `speedup_int8_vs_fp32` (goal ≥ 1.5).
The model has random weights: latency and export time do not depend on what it learned.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

VARIANT = "blitzmask-b0"
SIZE = 320
THREADS = 2
CALIB_IMAGES = 128
WARMUP, RUNS = 3, 20


def _p50_ms(runtime, image: np.ndarray) -> float:
    for _ in range(WARMUP):
        runtime(image)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        runtime(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return round(float(np.median(times)), 2)


def run() -> dict:
    """Export b0 at 320 to fp32, fp16, int8 and ONNX, then time each file and torch eager."""
    import torch

    from blitzmask_deploy.artifacts import load_manifest
    from blitzmask_deploy.checkpoint import save_checkpoint
    from blitzmask_deploy.data.synthetic import generate_dataset
    from blitzmask_deploy.export.pipeline import export_checkpoint
    from blitzmask_deploy.modeling.registry import create_model
    from blitzmask_deploy.validate.runtimes import TorchRuntime, open_runtime

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    results: dict = {"variant": VARIANT, "input_size": SIZE, "threads": THREADS, "calib_images": CALIB_IMAGES}
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        root = Path(tmp)
        data = generate_dataset(root / "data", train=CALIB_IMAGES, val=1, size=SIZE, seed=0, progress=False)
        model = create_model(VARIANT, input_size=SIZE).eval()
        ckpt = save_checkpoint(root / "b0.pt", model, categories=[{"id": i + 1, "name": str(i)} for i in range(80)])
        out = root / "export"
        start, cpu_start = time.perf_counter(), time.process_time()
        export_checkpoint(ckpt, out, calib=data, calib_images=CALIB_IMAGES, progress=True)
        results["export_s_total"] = round(time.perf_counter() - start, 1)
        results["export_cpu_s"] = round(time.process_time() - cpu_start, 1)
        results["export_goal_met"] = results["export_s_total"] <= 120.0

        image = np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32)
        results["latency_ms_p50_torch"] = _p50_ms(TorchRuntime(model, SIZE, threads=THREADS), image)
        for entry in load_manifest(out).files:
            key = entry.name.replace("-", "_")
            results[f"latency_ms_p50_{key}"] = _p50_ms(open_runtime(out, entry, threads=THREADS), image)
            results[f"bytes_{key}"] = entry.bytes
    fp32, int8 = results["latency_ms_p50_tflite_fp32"], results["latency_ms_p50_tflite_int8"]
    results["speedup_tflite_fp32_vs_torch"] = round(results["latency_ms_p50_torch"] / fp32, 2)
    results["speedup_int8_vs_fp32"] = round(fp32 / int8, 2)
    return results
