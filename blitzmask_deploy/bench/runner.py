"""Benchmark sweeps: models × delegates × threads × devices, devices in parallel, resumable through the store.

Every cell of the sweep is inserted as 'pending' before anything runs; each device thread then works through
its own cells and skips those already 'done' (and 'failed' unless `retry_failed`). A device that disappears
leaves its remaining cells pending — running the same sweep again finishes them. Each cell is claimed in the store
before it runs, so a second process sweeping the same cells skips those this one holds (its leases are renewed
every RENEW_S while the sweep runs, and dropped when it ends).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blitzmask_deploy.bench.device import Device
from blitzmask_deploy.bench.errors import DeviceError, DeviceGone, RuntimeMissing
from blitzmask_deploy.bench.store import LEASE_S, CellSpec, ResultStore, new_owner
from blitzmask_deploy.bench.thermal import wait_for_cooldown
from blitzmask_deploy.core.artifacts import (
    ExportedFile,
    TensorSpec,
    load_manifest,
    manifest_path,
    sha256_file,
    verify_file,
)
from blitzmask_deploy.core.errors import BadInput

SETTLE_S = 0.5  # between the two liveness checks after a device error
RENEW_S = LEASE_S / 3  # how often a running sweep renews its claims


@dataclass(frozen=True)
class ModelRef:
    """One .tflite to benchmark, with its identity."""

    path: Path
    sha256: str
    name: str
    variant: str | None = None
    precision: str | None = None


def expand_models(paths: list[Path]) -> list[ModelRef]:
    """EXPORT_DIRs → their manifest's .tflite files (sha256 and I/O tensors verified); plain .tflite paths are
    taken as they are."""
    models: list[ModelRef] = []
    for path in paths:
        if path.is_dir() or path.name == "manifest.json":
            manifest = load_manifest(path)
            root = manifest_path(path).parent
            for entry in manifest.files:
                if entry.format == "tflite":
                    file = verify_file(root, entry)
                    check_io(file, entry)
                    models.append(ModelRef(file, entry.sha256, entry.name, manifest.variant, entry.precision))
        elif path.is_file() and path.suffix == ".tflite":
            _interpreter(path)  # a file that is not a model is refused here, not measured as a failed cell
            models.append(ModelRef(path, sha256_file(path), path.stem))
        elif not path.exists():
            raise BadInput(f"model not found: {path}")
        else:
            raise BadInput(f"{path} is neither an export directory nor a .tflite file")
    if not models:
        raise BadInput("no .tflite files to benchmark")
    return models


def _interpreter(file: Path) -> Any:
    """A LiteRT interpreter of `file` (not allocated); BadInput when the file is not a readable .tflite model."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_path=str(file))
    except (RuntimeError, ValueError) as err:
        raise BadInput(f"{file}: cannot be read as a .tflite model ({' '.join(str(err).split())})") from None


def check_io(file: Path, entry: ExportedFile) -> None:
    """BadInput naming the first difference between the file's input/output tensors (name, shape, dtype, in the
    file's order) and the manifest's spec of them."""
    interp = _interpreter(file)
    for kind, details, specs in (
        ("input", interp.get_input_details(), entry.inputs),
        ("output", interp.get_output_details(), entry.outputs),
    ):
        difference = _first_difference(kind, details, specs)
        if difference:
            raise BadInput(f"{file} does not match its manifest: {difference}")


def _first_difference(kind: str, details: list[dict], specs: list[TensorSpec]) -> str | None:
    """'output 0 shape: [1, 8] in the file, [1, 9] in the manifest', or None when they agree."""
    import numpy as np

    if len(details) != len(specs):
        return f"{len(details)} {kind}s in the file, {len(specs)} in the manifest"
    for i, (detail, spec) in enumerate(zip(details, specs, strict=True)):
        found = {
            "name": detail["name"],
            "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name,
        }
        expected = {"name": spec.tensor or spec.name, "shape": spec.shape, "dtype": spec.dtype}
        for key, value in found.items():
            if value != expected[key]:
                return f"{kind} {i} {key}: {value} in the file, {expected[key]} in the manifest"
    return None


@dataclass
class Settings:
    """The sweep's axes and per-cell settings."""

    delegates: list[str]
    threads: list[int]
    warmup: int = 10
    runs: int = 100
    sustained_s: float = 0.0
    target_fps: float = 30.0
    cooldown_c: float | None = None
    cooldown_max_s: float = 300.0
    cooldown_poll_s: float = 2.0
    retry_failed: bool = False
    apk: Path | None = None


@dataclass
class SweepResult:
    """What a sweep did; `keys` are its cells in the store."""

    keys: list[str] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    claimed_elsewhere: int = 0  # pending cells another live process held when this sweep reached them
    gone: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    def counts(self, store: ResultStore) -> dict[str, int]:
        """How many of this sweep's cells are done / failed / pending now."""
        rows = store.cells(keys=self.keys)
        return {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "pending")}


def plan_cells(models: list[ModelRef], serial: str, kind: str, info: dict, settings: Settings) -> list[CellSpec]:
    """The cells of one device, in run order (model, delegate, threads)."""
    return [
        CellSpec(
            model_path=str(m.path),
            model_sha256=m.sha256,
            model_name=m.name,
            variant=m.variant,
            precision=m.precision,
            device_serial=serial,
            device_kind=kind,
            device_model=info.get("model"),
            device_fingerprint=info.get("fingerprint"),
            delegate=delegate,
            threads=threads,
            warmup=settings.warmup,
            runs=settings.runs,
            sustained_s=settings.sustained_s,
            target_fps=settings.target_fps,
        )
        for m in models
        for delegate in settings.delegates
        for threads in settings.threads
    ]


def run_sweep(
    models: list[ModelRef], devices: list[Device], store: ResultStore, settings: Settings, *, progress: bool = True
) -> SweepResult:
    """Run every missing cell on every device (one thread per device, a tqdm bar each on stderr)."""
    start = time.perf_counter()
    result = SweepResult()
    plans: list[tuple[Device, list[CellSpec]]] = []
    for device in devices:
        try:
            info = device.info()
        except DeviceError as err:
            result.gone[device.serial] = str(err)
            continue
        cells = plan_cells(models, device.serial, device.kind, info, settings)
        plans.append((device, cells))
        result.keys += [c.key for c in cells]
    store.add_pending([c for _, cells in plans for c in cells])
    lock = threading.Lock()
    errors: list[BaseException] = []
    owner = new_owner()
    threads = [
        threading.Thread(
            target=_device_worker,
            args=(device, cells, store, settings, result, lock, errors, i, progress, owner),
            name=f"bench-{device.serial}",
            daemon=True,
        )
        for i, (device, cells) in enumerate(plans)
    ]
    with renewing(store, owner):
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    if errors:
        raise errors[0]
    result.wall_s = time.perf_counter() - start
    return result


def _device_worker(
    device: Device,
    cells: list[CellSpec],
    store: ResultStore,
    settings: Settings,
    result: SweepResult,
    lock: threading.Lock,
    errors: list[BaseException],
    position: int,
    progress: bool,
    owner: str,
) -> None:
    from tqdm import tqdm

    disable = None if progress else True  # None: shown on a terminal only
    bar = tqdm(total=len(cells), desc=device.serial, position=position, file=sys.stderr, disable=disable)
    statuses = ("pending", "failed") if settings.retry_failed else ("pending",)
    try:
        todo = [c for c in cells if store.status(c.key) in statuses]
        with lock:
            result.skipped += len(cells) - len(todo)
        bar.update(len(cells) - len(todo))
        if todo:
            device.ensure_app(settings.apk)
        for cell in todo:
            if store.claim(cell.key, owner, statuses):
                _run_cell(device, cell, store, settings)
                with lock:
                    result.ran += 1
            else:  # being measured by another process (or finished by it meanwhile)
                with lock:
                    result.skipped += 1
                    result.claimed_elsewhere += store.status(cell.key) in statuses
            bar.update(1)
    except DeviceError as err:  # DeviceGone, or a device that cannot run the app: its cells stay pending
        with lock:
            result.gone[device.serial] = str(err)
    except BaseException as err:  # surfaced by run_sweep in the main thread
        errors.append(err)
    finally:
        bar.close()
        store.close()


@contextmanager
def renewing(store: ResultStore, owner: str, table: str = "cells") -> Iterator[None]:
    """Renew `owner`'s leases on the cells of `table` every RENEW_S in a background thread; drop them when the block
    ends."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_S):
            try:
                store.renew(owner, table)
            except BadInput:  # the store is busy right now: the lease outlives two missed renewals
                continue
        store.close()

    thread = threading.Thread(target=renew, name="bench-leases", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        store.release(owner, table)


def _run_cell(device: Device, cell: CellSpec, store: ResultStore, settings: Settings) -> None:
    """Measure one cell; DeviceGone propagates (the cell stays pending), other device errors fail the cell."""
    waited = None
    if settings.cooldown_c is not None:
        waited, _ = wait_for_cooldown(
            device.thermal, settings.cooldown_c, settings.cooldown_max_s, settings.cooldown_poll_s
        )
    try:
        remote = device.prepare(Path(cell.model_path), cell.model_sha256)
        store.mark_started(cell.key)
        outcome = device.run(
            remote,
            cell_key=cell.key,
            delegate=cell.delegate,
            threads=cell.threads,
            warmup=cell.warmup,
            runs=cell.runs,
            sustained_s=cell.sustained_s,
            target_fps=cell.target_fps,
        )
    except RuntimeMissing as err:
        if err.result is None:
            store.fail(cell.key, str(err))
        else:
            store.finish(cell.key, err.result, cooldown_s=waited)
        return
    except DeviceGone:
        raise
    except DeviceError as err:
        if not still_alive(device):
            raise DeviceGone(str(err)) from None
        store.fail(cell.key, str(err))
        return
    store.finish(cell.key, outcome, cooldown_s=waited)


def still_alive(device: Device) -> bool:
    """alive() twice, SETTLE_S apart, before an error may fail a cell: the error of an unplug can arrive while the
    adb server still lists the device, and a failed cell is not retried by a plain rerun, a pending one is."""
    if not device.alive():
        return False
    time.sleep(SETTLE_S)
    return device.alive()
