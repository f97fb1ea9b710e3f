"""Device accuracy benchmark: `validate --device` of 200 val images at 320 on the emulated device vs on the host.

One fp32 .tflite of blitzmask-tiny (random weights: the time does not depend on what the model learned), delegate
XNNPACK, 2 threads. The same command, `run_validate_device`, runs on fresh stores with the emulated phone as the
device and with `local` (this host) as the device, so both validate the same file on the same images with the same
threads and do the same host work (checkpoint AP, input pack, host reference outputs, decode and evaluation); they
differ only in where the cell runs. A short untimed run on 8 images first pays the imports and compilations both
would otherwise pay in their own process; then the two commands run alternately ROUNDS times (the phone emptied
before each of its runs), and the fastest run of each counts (on a shared CPU the slower runs measure the others'
load). Figures:
- `device_runs_s` / `host_runs_s`: every run; `device_s` / `host_s`: the fastest; `ratio` = device_s / host_s
  (goal ≤ 2, `goal_met`);
- `device_cell_s` / `host_cell_s`: the part spent in the device's calls (installing the app, pushing the model and
  the input pack, running accuracy mode, pulling the output pack), and `cell_ratio`; `device_push_inputs_s` and
  `device_run_accuracy_s` split the device's part;
- `device_rerun_s`: the first emulated command again on its store (every cell done: nothing pushed or measured).
Skipped where the emulated device cannot start (it needs root and namespaces).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

SIZE = 320
VAL_IMAGES = 200
THREADS = 2
DELEGATE = "xnnpack"
ROUNDS = 3
TIMED = ("ensure_app", "prepare", "push_inputs", "run_accuracy")


class _Timed:
    """A device whose calls that move files or run the model add their wall time to `calls[name]`."""

    def __init__(self, device: Any) -> None:
        self._device = device
        self.calls = dict.fromkeys(TIMED, 0.0)

    @property
    def seconds(self) -> float:
        """Wall time of every timed call."""
        return sum(self.calls.values())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._device, name)
        if name not in TIMED:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.calls[name] += time.perf_counter() - start

        return timed


def run() -> dict:
    """Export blitzmask-tiny fp32 at 320, validate it on the emulated device and on the host, and time both."""
    from tests.support.emulated.device import EmulatedDevice, EmulatorUnavailable, free_port_pair, reap_stale

    with tempfile.TemporaryDirectory(prefix="bench_device_accuracy_") as tmp:
        root = Path(tmp)
        reap_stale()
        port, adb_port = free_port_pair()
        device = EmulatedDevice(root / "device", port=port, adb_port=adb_port)
        try:
            device.start()
        except EmulatorUnavailable as err:
            device.stop()
            return {"skipped": f"emulated device unavailable: {err}"}
        try:
            return _measure(root, device)
        finally:
            device.stop()


def _measure(root: Path, emulated: Any) -> dict:
    from blitzmask_deploy.bench.adb import AndroidDevice
    from blitzmask_deploy.bench.local import LocalDevice
    from blitzmask_deploy.bench.protocol import APP_VERSION, APP_VERSION_CODE, PACKAGE, REMOTE_ROOT, quote_command
    from tests.support.fake_apk import write_apk

    data, export = _export(root)
    apk = write_apk(root / "blitzmask-bench.apk", PACKAGE, APP_VERSION_CODE, APP_VERSION)
    apk.with_name(apk.name + ".json").write_text(json.dumps({"package": PACKAGE, "version_code": APP_VERSION_CODE}))
    _validate(export, data, LocalDevice(), root / "warm-up" / "results.sqlite", apk, images=8)
    runs: dict[str, list[tuple[float, Any, _Timed]]] = {"device": [], "host": []}
    for i in range(ROUNDS):  # alternated, each on a fresh store and with nothing on the phone yet
        phone = _Timed(AndroidDevice.connect(emulated.serial, emulated.adb_address))
        phone.sh(quote_command(["rm", "-rf", REMOTE_ROOT]))
        runs["device"].append((*_validate(export, data, phone, root / f"device-{i}" / "results.sqlite", apk), phone))
        host = _Timed(LocalDevice())
        runs["host"].append((*_validate(export, data, host, root / f"host-{i}" / "results.sqlite", apk), host))
    device_s, device_out, phone = min(runs["device"], key=lambda run: run[0])
    host_s, host_out, host = min(runs["host"], key=lambda run: run[0])
    calls = dict(phone.calls)
    rerun_s, rerun_out = _validate(export, data, phone, root / "device-0" / "results.sqlite", apk)
    for out, ran in ((device_out, 1), (host_out, 1), (rerun_out, 0)):
        if (out.ran, out.images, [r["status"] for r in out.rows]) != (ran, VAL_IMAGES, ["done"]):
            raise RuntimeError(f"validate --device did not measure as expected: {out.to_json()}")
    ratio = device_s / host_s
    return {
        "variant": "blitzmask-tiny",
        "precision": "fp32",
        "input_size": SIZE,
        "images": VAL_IMAGES,
        "delegate": DELEGATE,
        "threads": THREADS,
        "rounds": ROUNDS,
        "device_runs_s": [round(run[0], 2) for run in runs["device"]],
        "host_runs_s": [round(run[0], 2) for run in runs["host"]],
        "device_s": round(device_s, 2),
        "host_s": round(host_s, 2),
        "ratio": round(ratio, 2),
        "goal_met": ratio <= 2.0,
        "device_cell_s": round(sum(calls.values()), 2),
        "host_cell_s": round(host.seconds, 2),
        "cell_ratio": round(sum(calls.values()) / host.seconds, 2),
        "device_push_inputs_s": round(calls["push_inputs"], 2),
        "device_run_accuracy_s": round(calls["run_accuracy"], 2),
        "device_rerun_s": round(rerun_s, 2),
        "device_mask_ap": device_out.rows[0]["mask_ap"],
        "host_mask_ap": host_out.rows[0]["mask_ap"],
    }


def _export(root: Path) -> tuple[Path, Path]:
    """A synthetic dataset (val 200 at 320) and blitzmask-tiny (random weights) exported to fp32 .tflite."""
    import torch

    from blitzmask_deploy.core.checkpoints import save_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.data.synthetic import generate_dataset
    from blitzmask_deploy.export.pipeline import export_checkpoint
    from blitzmask_deploy.modeling.registry import create_model

    data = generate_dataset(root / "data", train=8, val=VAL_IMAGES, size=SIZE, seed=0, progress=False)
    torch.manual_seed(0)
    dataset = CocoDataset.from_split(data, "val")
    model = create_model("blitzmask-tiny", num_classes=dataset.num_classes, input_size=SIZE)
    ckpt = save_checkpoint(root / "tiny.pt", model, categories=dataset.categories)
    export_checkpoint(ckpt, root / "export", formats=["fp32"], progress=False)
    return data, root / "export"


def _validate(export: Path, data: Path, device: Any, store_path: Path, apk: Path, images: int = 0) -> tuple[float, Any]:
    """Wall time and outcome of `validate EXPORT --data DATA --device ... --delegate xnnpack --threads 2`."""
    from blitzmask_deploy.bench.store import ResultStore
    from blitzmask_deploy.validate.device import run_validate_device

    store_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcome = run_validate_device(
        export, data, [device], ResultStore(store_path), delegates=[DELEGATE], threads=THREADS, max_images=images,
        apk=apk, progress=False,
    )  # fmt: skip
    return time.perf_counter() - start, outcome
