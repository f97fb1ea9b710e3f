"""Export benchmark: every variant at 320 exported to every format, and the host latency of each file.

Figures per variant (2 threads everywhere, as on the 2-core CI host), keys prefixed with the variant:
- `params`, `gmacs`; `export_s_total`: wall time of the whole export, calibration included (goal for b0 ≤ 120 s),
  and `export_cpu_s`, the CPU time it used (on a shared host the figure that does not depend on other load);
- `latency_ms_p50_*`: median single-image latency of PyTorch eager, fp32/fp16/int8 TFLite (LiteRT, XNNPACK)
  and ONNX Runtime; for b0 `speedup_tflite_fp32_vs_torch` (goal ≥ 2) and `speedup_int8_vs_fp32` (goal ≥ 1.5 on
  CPUs with int8 dot-product instructions).
The README's variants table is these figures. The models have random weights: latency and export time do not
depend on what they learned.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_VARIANT = "blitzmask-b0"
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
    """Every variant: export at 320 to fp32, fp16, int8 and ONNX, then time each file and torch eager."""
    from blitzmask_deploy.data.synthetic import generate_dataset
    from blitzmask_deploy.modeling.registry import list_variants

    results: dict = {"input_size": SIZE, "threads": THREADS, "calib_images": CALIB_IMAGES}
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        root = Path(tmp)
        data = generate_dataset(root / "data", train=CALIB_IMAGES, val=1, size=SIZE, seed=0, progress=False)
        for variant in list_variants():
            figures = _measure(variant, data, root / variant)
            results.update({f"{variant}.{key}": value for key, value in figures.items()})
    b0 = f"{GOAL_VARIANT}."
    fp32, int8 = results[b0 + "latency_ms_p50_tflite_fp32"], results[b0 + "latency_ms_p50_tflite_int8"]
    results["export_goal_met"] = results[b0 + "export_s_total"] <= 120.0
    results["speedup_tflite_fp32_vs_torch"] = round(results[b0 + "latency_ms_p50_torch"] / fp32, 2)
    results["speedup_int8_vs_fp32"] = round(fp32 / int8, 2)
    return results


def _measure(variant: str, data: Path, work: Path) -> dict:
    """Export one variant (random weights, 80 classes) and time every file."""
    import torch

    from blitzmask_deploy.core.artifacts import load_manifest
    from blitzmask_deploy.core.checkpoints import save_checkpoint
    from blitzmask_deploy.export.pipeline import export_checkpoint
    from blitzmask_deploy.inference.runtimes import TorchRuntime, open_runtime
    from blitzmask_deploy.modeling.complexity import count_macs, count_params
    from blitzmask_deploy.modeling.registry import create_model

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = create_model(variant, input_size=SIZE).eval()
    figures: dict = {"params": count_params(model), "gmacs": round(count_macs(model, SIZE) / 1e9, 3)}
    categories = [{"id": i + 1, "name": str(i)} for i in range(model.config.num_classes)]
    ckpt = save_checkpoint(work / "model.pt", model, categories=categories)
    out = work / "export"
    start, cpu_start = time.perf_counter(), time.process_time()
    export_checkpoint(ckpt, out, calib=data, calib_images=CALIB_IMAGES, progress=True)
    figures["export_s_total"] = round(time.perf_counter() - start, 1)
    figures["export_cpu_s"] = round(time.process_time() - cpu_start, 1)
    image = np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32)
    figures["latency_ms_p50_torch"] = _p50_ms(TorchRuntime(model, SIZE, threads=THREADS), image)
    for entry in load_manifest(out).files:
        key = entry.name.replace("-", "_")
        figures[f"latency_ms_p50_{key}"] = _p50_ms(open_runtime(out, entry, threads=THREADS), image)
        figures[f"bytes_{key}"] = entry.bytes
    return figures
