"""Builds a run directory in the documented formats (manifest.json, validation.json, a bench store) for report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from blitzmask_deploy.bench.store import CellSpec, ResultStore
from blitzmask_deploy.core.artifacts import sha256_file

# (format, precision, file, mask_ap) — drops vs a 0.300 reference: 0, 0.0005 (0.05 AP), 0.004 (0.4 AP), 0.0002
FILES = [
    ("tflite", "fp32", "model_fp32.tflite", 0.3000),
    ("tflite", "fp16", "model_fp16.tflite", 0.2995),
    ("tflite", "int8", "model_int8.tflite", 0.2960),
    ("onnx", "fp32", "model.onnx", 0.2998),
]
REFERENCE_AP = 0.300
LATENCY_MS = {"fp32": 20.0, "fp16": 19.0, "int8": 9.0}


def _spec(name: str, dtype: str) -> dict:
    return {"name": name, "shape": [1, 32, 32, 8], "dtype": dtype, "layout": "NHWC", "quant": None}


def make_export(export_dir: Path, *, int8_ap: float = 0.2960, gmacs: float | None = 0.42) -> Path:
    """An export dir with fake model files, manifest.json and validation.json; returns the dir."""
    export_dir.mkdir(parents=True, exist_ok=True)
    files, variants = [], []
    for fmt, precision, name, ap in FILES:
        ap = int8_ap if precision == "int8" else ap
        path = export_dir / name
        path.write_bytes(f"fake {name}".encode())
        sha = sha256_file(path)
        files.append(
            {
                "file": name,
                "format": fmt,
                "precision": precision,
                "sha256": sha,
                "bytes": path.stat().st_size,
                "inputs": [_spec("image", "float32")],
                "outputs": [_spec("heatmap", "float32")],
            }
        )
        variants.append(
            {
                "name": f"{fmt}-{precision}",
                "format": fmt,
                "precision": precision,
                "file": name,
                "sha256": sha,
                "mask_ap": ap,
                "mask_ap_drop": REFERENCE_AP - ap,
                "latency_ms_p50": LATENCY_MS[precision] * 1.5,
                "parity": {"heatmap": 1e-5},
                "parity_mean": {"heatmap": 1e-6},
                "budget": None,
                "passed": True,
            }
        )
    manifest = {
        "schema_version": 1,
        "variant": "blitzmask-tiny",
        "input_size": 128,
        "categories": [{"id": 1, "name": "disc"}],
        "architecture": {} if gmacs is None else {"gmacs": gmacs},
        "checkpoint": {"path": "best.pt", "sha256": "0" * 64},
        "files": files,
        "toolchain": {"torch": "test"},
        "created": "2026-01-01T00:00:00Z",
    }
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    validation = {
        "variant": "blitzmask-tiny",
        "checkpoint_sha256": "0" * 64,
        "dataset": "synthetic val",
        "reference": {"name": "checkpoint", "mask_ap": REFERENCE_AP},
        "variants": variants,
        "passed": True,
    }
    (export_dir / "validation.json").write_text(json.dumps(validation))
    return export_dir


def _result(model: Path, precision: str, delegate: str, threads: int, rng: np.random.Generator) -> dict:
    base = LATENCY_MS[precision] * (2.0 / threads) * (1.3 if delegate == "cpu" else 1.0)
    runs = (base + rng.gamma(2.0, base * 0.03, size=40)).round(3).tolist()
    return {
        "schema": 1,
        "status": "ok",
        "error": None,
        "model": str(model),
        "delegate_requested": delegate,
        "delegate_applied": delegate,
        "fallback": False,
        "fallback_ops": [],
        "threads": threads,
        "warmup": 3,
        "runs": len(runs),
        "init_ms": 12.5,
        "first_inference_ms": base * 2,
        "runs_ms": runs,
        "peak_memory_kb": 51200,
        "thermal_before": {"cpu-thermal": 41.0 + threads, "soc": 39.0},
        "thermal_after": {"cpu-thermal": 44.5 + threads, "soc": 40.0},
        "clocks_before": {"cpu0": 2_400_000},
        "clocks_after": {"cpu0": 2_400_000},
        "sustained": {
            "seconds": 5,
            "target_fps": 30.0,
            "frames": 140,
            "achieved_fps": 28.0,
            "throttled": False,
            "clocks_min_ratio": 0.98,
        }
        if precision == "int8" and delegate == "xnnpack"
        else None,
        "runtime": "litert",
        "runtime_version": "2.0",
        "app_version": "0.1.0",
        "device": {"fingerprint": "host", "model": "local host", "manufacturer": None, "soc": None, "android": None},
    }


def make_run(root: Path, **export_kwargs: object) -> Path:
    """A demo-like run dir: root/export (manifest + validation) and root/results.sqlite with local cells."""
    export_dir = make_export(root / "export", **export_kwargs)  # type: ignore[arg-type]
    manifest = json.loads((export_dir / "manifest.json").read_text())
    store = ResultStore(root / "results.sqlite")
    rng = np.random.default_rng(0)
    specs, results = [], []
    for entry in manifest["files"]:
        if entry["format"] != "tflite":
            continue
        for delegate, threads in (("cpu", 2), ("xnnpack", 1), ("xnnpack", 2)):
            spec = CellSpec(
                model_path=str(export_dir / entry["file"]),
                model_sha256=entry["sha256"],
                model_name=f"tflite-{entry['precision']}",
                variant="blitzmask-tiny",
                precision=entry["precision"],
                device_serial="local",
                device_kind="local",
                device_model="local host",
                device_fingerprint="host",
                delegate=delegate,
                threads=threads,
                warmup=3,
                runs=40,
            )
            specs.append(spec)
            results.append(_result(export_dir / entry["file"], entry["precision"], delegate, threads, rng))
    gpu = CellSpec(**{**specs[0].__dict__, "delegate": "gpu"})
    store.add_pending([*specs, gpu])
    for spec, result in zip(specs, results, strict=True):
        store.finish(spec.key, result)
    store.finish(gpu.key, {"status": "unsupported_delegate", "error": "delegate 'gpu' is not available on the host"})
    store.close()
    return root
