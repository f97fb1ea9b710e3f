"""A benchmark sweep on the `local` device: is the driver's overhead small next to what it measures?

Goal (issue 6): with ≥ 50 runs per cell, the sweep's wall time ≤ 1.2 × (Σ model load + first inference +
timed runs) measured by the cells. Warmup runs are untimed by the protocol, so the sweep uses 2 of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blitzmask_deploy.bench.local import LocalDevice
from blitzmask_deploy.bench.runner import Settings, expand_models, run_sweep
from blitzmask_deploy.bench.store import ResultStore

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_bench_tflite.py"
RUNS, WARMUP = 100, 2


def _model() -> Path:
    cmd = [sys.executable, str(SCRIPT), "--cached", "--size", "64", "--channels", "16"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return Path(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    """Sweep cpu,xnnpack × threads 1,2 on local; report wall vs measured time."""
    model = _model()
    settings = Settings(delegates=["cpu", "xnnpack"], threads=[1, 2], warmup=WARMUP, runs=RUNS)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = ResultStore(Path(tmp) / "sweep.sqlite")
        sweep = run_sweep(expand_models([model]), [LocalDevice()], store, settings, progress=False)
        wall_s = time.perf_counter() - t0
        rows = store.cells(keys=sweep.keys)
    measured_ms = sum(
        r["init_ms"] + r["first_ms"] + sum(json.loads(r["runs_ms"])) for r in rows if r["status"] == "done"
    )
    cells = {f"{r['delegate']}-t{r['threads']}": round(r["p50_ms"], 3) for r in rows if r["status"] == "done"}
    return {
        "sweep_cells": len(rows),
        "sweep_cells_done": sum(r["status"] == "done" for r in rows),
        "sweep_runs_per_cell": RUNS,
        "sweep_wall_s": round(wall_s, 3),
        "sweep_measured_s": round(measured_ms / 1e3, 3),
        "sweep_wall_over_measured": round(wall_s / (measured_ms / 1e3), 3),
        "sweep_goal_max_ratio": 1.2,
        **{f"sweep_p50_ms_{k}": v for k, v in cells.items()},
    }
