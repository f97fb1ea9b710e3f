"""`blitzmask demo`: synthetic data → train blitzmask-tiny → export all formats → validate → bench → report.

Every step leaves an artefact in OUT and is skipped when that artefact exists, so re-running reuses finished
steps (an interrupted training resumes from OUT/train/last.pt; the bench store skips finished cells):

    OUT/data/.done                 1 synthetic COCO dataset
    OUT/train/metrics.json         2 trained checkpoint (best.pt)
    OUT/export/manifest.json       3 TFLite fp32/fp16/int8 + ONNX
    OUT/export/validation.json     4 host AP, drop, parity, latency per file (a budget failure is shown, not fatal)
    OUT/results.sqlite             5 benchmark cells on `local` and every attached adb device
    OUT/report/report.html         6 the report (always rewritten)
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.artifacts import MANIFEST_NAME, MAX_INPUT_SIZE, VALIDATION_NAME
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_writable
from blitzmask_deploy.core.openmp import set_openmp_wait_policy


@dataclass
class DemoConfig:
    """Options of `blitzmask demo`."""

    out: Path = Path("runs/demo")
    model: str = "blitzmask-tiny"
    minutes: float = 8.0
    train_images: int = 2000
    val_images: int = 200
    size: int = 320
    calib_images: int = 64
    runs: int = 50
    warmup: int = 5
    local_delegates: tuple[str, ...] = ("cpu", "xnnpack")
    local_threads: tuple[int, ...] = (1, 2)
    adb_delegates: tuple[str, ...] = ("xnnpack", "gpu", "nnapi")
    adb_threads: tuple[int, ...] = (4,)
    adb: list[str] = field(default_factory=list)
    skip_bench: bool = False
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        """BadInput for options the demo cannot run with."""
        if self.size % 32 or not 64 <= self.size <= MAX_INPUT_SIZE:
            raise BadInput(f"--size must be a multiple of 32 from 64 to {MAX_INPUT_SIZE}")
        if not (0 < self.minutes < math.inf) or self.runs < 1 or self.calib_images < 1:
            raise BadInput("--minutes must be a finite number > 0, --runs and --calib-images ≥ 1")
        if self.train_images < 1 or self.val_images < 1:
            raise BadInput("--train-images and --val-images must be ≥ 1")
        from blitzmask_deploy.bench.discovery import check_servers

        check_servers(self.adb)


@dataclass
class DemoResult:
    """Where the demo's artefacts are and how each step went."""

    out: Path
    report: Path
    validation_passed: bool | None
    steps: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """The `--json` object."""
        return {
            "out": str(self.out),
            "report": str(self.report),
            "validation_passed": self.validation_passed,
            "steps": self.steps,
        }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Steps:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done: list[dict[str, Any]] = []

    def run(self, name: str, marker: Path | None, fn: Callable[[], Any]) -> Any:
        index = len(self.done) + 1
        if marker is not None and marker.exists():
            _log(f"[{index}/{self.total}] {name}: reusing {marker}")
            self.done.append({"step": name, "skipped": True, "seconds": 0.0})
            return None
        _log(f"[{index}/{self.total}] {name} …")
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
        _log(f"[{index}/{self.total}] {name}: done in {seconds:.0f} s")
        self.done.append({"step": name, "skipped": False, "seconds": round(seconds, 1)})
        return value


def _data_params(cfg: DemoConfig) -> dict[str, int]:
    return {"train": cfg.train_images, "val": cfg.val_images, "size": cfg.size, "seed": cfg.seed}


def _make_data(cfg: DemoConfig, root: Path) -> None:
    from blitzmask_deploy.data.synthetic import generate_dataset

    generate_dataset(
        root, train=cfg.train_images, val=cfg.val_images, size=cfg.size, seed=cfg.seed, progress=cfg.progress
    )
    (root / ".done").write_text(json.dumps(_data_params(cfg)) + "\n")


def _check_reuse(cfg: DemoConfig, data: Path) -> None:
    """Refuse to reuse a finished dataset made with other options (later steps would silently mismatch)."""
    marker = data / ".done"
    if marker.exists() and json.loads(marker.read_text()) != _data_params(cfg):
        raise BadInput(
            f"{cfg.out} holds a demo made with other data options ({marker.read_text().strip()}): "
            "use another --out or the same options"
        )


def _train(cfg: DemoConfig, data: Path, run: Path) -> None:
    from blitzmask_deploy.train.config import TrainConfig
    from blitzmask_deploy.train.trainer import train

    train(  # batch size, learning rate, optimizer and threads: the recipe for this hardware
        TrainConfig(
            data=data,
            model=cfg.model,
            out=run,
            minutes=cfg.minutes,
            input_size=cfg.size,
            resume=(run / "last.pt").exists(),
            seed=cfg.seed,
            progress=cfg.progress,
        )
    )


def _export(cfg: DemoConfig, run: Path, data: Path, export_dir: Path) -> None:
    from blitzmask_deploy.export.pipeline import export_checkpoint

    ckpt = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
    export_checkpoint(ckpt, export_dir, calib=data, calib_images=cfg.calib_images, progress=cfg.progress)


def _validate(export_dir: Path, data: Path, progress: bool) -> bool:
    from blitzmask_deploy.validate.export_dir import run_validate_export

    result = run_validate_export(export_dir, data, progress=progress)
    _log(result.to_table())
    if not result.passed:
        _log("validation: some files are over their budgets (see the report); the demo continues")
    return bool(result.passed)


def _bench(cfg: DemoConfig, export_dir: Path, store_path: Path) -> None:
    from blitzmask_deploy.bench.device import Device
    from blitzmask_deploy.bench.discovery import list_devices, open_devices
    from blitzmask_deploy.bench.local import LocalDevice
    from blitzmask_deploy.bench.runner import Settings, expand_models, run_sweep
    from blitzmask_deploy.bench.store import ResultStore

    models = expand_models([export_dir])
    store = ResultStore(store_path)
    servers = cfg.adb or None
    entries, notes = list_devices(servers, with_info=False)
    for note in notes:
        _log(note)
    serials = [e.serial for e in entries if e.kind == "adb" and e.state == "device"]
    plans: list[tuple[list[Device], Settings]] = [
        ([LocalDevice()], Settings(list(cfg.local_delegates), list(cfg.local_threads), cfg.warmup, cfg.runs))
    ]
    if serials:
        devices, _ = open_devices(serials, servers)
        plans.append((devices, Settings(list(cfg.adb_delegates), list(cfg.adb_threads), cfg.warmup, cfg.runs)))
    try:
        for devices, settings in plans:
            sweep = run_sweep(models, devices, store, settings, progress=cfg.progress)
            for serial, why in sweep.gone.items():
                _log(f"bench: {serial} left the sweep ({why}); re-run the demo to finish its cells")
    finally:
        store.close()


def _report(out: Path, report_dir: Path) -> Path:
    from blitzmask_deploy.report.html import write_report
    from blitzmask_deploy.report.sources import load_results

    return write_report(load_results(out), report_dir).html


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run (or resume) the whole pipeline under `cfg.out`; returns where the report is."""
    cfg.check()
    out = cfg.out
    check_writable(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    data, run, export_dir, store = out / "data", out / "train", out / "export", out / "results.sqlite"
    _check_reuse(cfg, data)
    set_openmp_wait_policy()  # before the first step imports torch
    steps = _Steps(6)
    steps.run("synthetic data", data / ".done", lambda: _make_data(cfg, data))
    steps.run(f"train {cfg.model} ({cfg.minutes:g} min)", run / "metrics.json", lambda: _train(cfg, data, run))
    steps.run("export fp32/fp16/int8/onnx", export_dir / MANIFEST_NAME, lambda: _export(cfg, run, data, export_dir))
    validate = partial(_validate, export_dir, data, cfg.progress)
    steps.run("validate exported files on the host", export_dir / VALIDATION_NAME, validate)
    validation = json.loads((export_dir / VALIDATION_NAME).read_text())
    if cfg.skip_bench:
        _log("[5/6] benchmark: skipped (--skip-bench)")
        steps.done.append({"step": "benchmark", "skipped": True, "seconds": 0.0})
    else:
        steps.run("benchmark on local + attached adb devices", None, lambda: _bench(cfg, export_dir, store))
    report = steps.run("report", None, lambda: _report(out, out / "report"))
    return DemoResult(out=out, report=report, validation_passed=validation.get("passed"), steps=steps.done)
