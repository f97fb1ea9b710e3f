"""Device accuracy benchmark: `validate --device` of 200 val images at 320 on the emulated device vs on the host.

One fp32 .tflite of blitzmask-tiny (random weights: the time does not depend on what the model learned), delegate
XNNPACK, 2 threads. The same command, `run_validate_device`, runs twice on fresh stores: once with the emulated
phone as the device and once with `local` (this host) as the device, so both validate the same file on the same
images with the same threads and share the checkpoint AP, the input set and the host's reference outputs; they
differ only in where the cell runs. Figures:
- `device_s` / `host_s`: wall time of each command; `ratio` = device_s / host_s (goal ≤ 2, `goal_met`);
- `device_cell_s` / `host_cell_s`: the part spent in the device's calls (pushing the app, the model and the input
  set, running accuracy mode, pulling the outputs), and `cell_ratio`;
- `device_rerun_s`: the same emulated command again on its store (every cell done: nothing pushed or measured).
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
TIMED = ("ensure_app", "prepare", "push_inputs", "run_accuracy")


class _Timed:
    """A device whose calls that move files or run the model add their wall time to `seconds`."""

    def __init__(self, device: Any) -> None:
        self._device = device
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._device, name)
        if name not in TIMED:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

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
    from blitzmask_deploy.bench.protocol import PACKAGE
    from tests.support.fake_apk import write_apk

    data, export = _export(root)
    apk = write_apk(root / "blitzmask-bench.apk", PACKAGE, 2, "0.2.0")
    apk.with_name(apk.name + ".json").write_text(json.dumps({"package": PACKAGE, "version_code": 2}))
    phone = _Timed(AndroidDevice.connect(emulated.serial, emulated.adb_address))
    device_s, device_out = _validate(export, data, phone, root / "device-store" / "results.sqlite", apk)
    device_cell_s = phone.seconds
    host = _Timed(LocalDevice())
    host_s, host_out = _validate(export, data, host, root / "host-store" / "results.sqlite", apk)
    rerun_s, rerun_out = _validate(export, data, phone, root / "device-store" / "results.sqlite", apk)
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
        "device_s": round(device_s, 2),
        "host_s": round(host_s, 2),
        "ratio": round(ratio, 2),
        "goal_met": ratio <= 2.0,
        "device_cell_s": round(device_cell_s, 2),
        "host_cell_s": round(host.seconds, 2),
        "cell_ratio": round(device_cell_s / host.seconds, 2),
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


def _validate(export: Path, data: Path, device: Any, store_path: Path, apk: Path) -> tuple[float, Any]:
    """Wall time and outcome of `validate EXPORT --data DATA --device ... --delegate xnnpack --threads 2`."""
    from blitzmask_deploy.bench.store import ResultStore
    from blitzmask_deploy.validate.device import run_validate_device

    store_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcome = run_validate_device(
        export, data, [device], ResultStore(store_path), delegates=[DELEGATE], threads=THREADS, apk=apk, progress=False
    )
    return time.perf_counter() - start, outcome
