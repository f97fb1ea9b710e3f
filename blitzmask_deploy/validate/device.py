"""`blitzmask validate EXPORT_DIR --data DIR --device ...`: mask AP of every exported .tflite file measured on
devices, per delegate (the app's accuracy mode), beside the same file on host LiteRT and the checkpoint.

The val images are preprocessed as the host does it (and quantised for int8 inputs) into one tensor pack per input
spec, cached next to the store and pushed once per device (content-addressed: a device that holds it is not sent it
again). Each (file, device, delegate, threads) is an accuracy cell of the bench result store: pending → done|failed,
so an unplugged device leaves its cells pending and the same command finishes them, measuring nothing that is done
again. A cell is claimed in the store (a lease, renewed while the run lasts) before it is measured, so two runs on
one store never measure the same cell twice.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from blitzmask_deploy.bench.device import Device
from blitzmask_deploy.bench.errors import AppOutdated, DeviceError, DeviceGone
from blitzmask_deploy.bench.local import LocalDevice
from blitzmask_deploy.bench.protocol import write_pack
from blitzmask_deploy.bench.runner import renewing, still_alive
from blitzmask_deploy.bench.store import AccuracyCellSpec, ResultStore, new_owner
from blitzmask_deploy.core.artifacts import (
    ExportedFile,
    TensorSpec,
    load_manifest,
    manifest_path,
    sha256_file,
    verify_file,
)
from blitzmask_deploy.core.errors import BadInput

if TYPE_CHECKING:
    import numpy as np

    from blitzmask_deploy.data.coco import CocoDataset

TABLE = "accuracy_cells"
HOST_DELEGATE = "xnnpack"  # host LiteRT as `blitzmask validate` runs it
_EPS = 1e-9


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class DeviceValidation:
    """The accuracy cells of one `validate --device` run, as stored, with the device AP-drop budgets."""

    variant: str
    dataset: str
    images: int
    store: Path
    rows: list[dict]
    budgets: dict[str, float | None]  # precision → allowed drop vs host (0–1), None: not checked
    ran: int = 0
    skipped: int = 0
    claimed_elsewhere: int = 0  # pending cells another live run held when this one reached them
    gone: dict[str, str] = field(default_factory=dict)

    def cell(self, row: dict) -> dict:
        """One cell's figures: AP, drop vs the checkpoint and vs the same file on the host, parity per head."""
        done = row["status"] == "done"
        budget = self.budgets.get(row["precision"])
        figures = {
            "name": row["model_name"],
            "precision": row["precision"],
            "sha256": row["model_sha256"],
            "device_serial": row["device_serial"],
            "device_model": row["device_model"],
            "delegate": row["delegate"],
            "delegate_applied": row["delegate_applied"],
            "fallback": bool(row["fallback"]),
            "threads": row["threads"],
            "status": row["status"],
            "mask_ap": row["mask_ap"],
            "host_ap": row["host_ap"],
            "reference_ap": row["reference_ap"],
            "mask_ap_drop": row["reference_ap"] - row["mask_ap"] if done else None,
            "host_ap_drop": row["host_ap"] - row["mask_ap"] if done else None,
            "parity": json.loads(row["parity"]) if done else None,
            "parity_mean": json.loads(row["parity_mean"]) if done else None,
            "budget": {"device_ap_drop_max": budget},
            "error": row["error"],
        }
        failures = []
        if done and budget is not None and figures["host_ap_drop"] > budget + _EPS:
            failures.append(f"device AP drop {100 * figures['host_ap_drop']:.2f} > {100 * budget:.2f} points")
        return {**figures, "failures": failures, "passed": done and not failures}

    @property
    def passed(self) -> bool:
        """True when every cell is done within its budget and no device went away."""
        return not self.gone and all(self.cell(r)["passed"] for r in self.rows)

    def to_json(self) -> dict:
        """The run as one JSON object: what was measured now, the counts per status and every cell's figures."""
        return {
            "variant": self.variant,
            "dataset": self.dataset,
            "images": self.images,
            "store": str(self.store),
            "ran": self.ran,
            "skipped": self.skipped,
            "claimed_elsewhere": self.claimed_elsewhere,
            **{s: sum(r["status"] == s for r in self.rows) for s in ("done", "failed", "pending")},
            "devices_stopped": self.gone,
            "cells": [self.cell(r) for r in self.rows],
            "passed": self.passed,
        }

    def to_table(self) -> str:
        """A fixed-width table in AP points: device AP, host AP, drops, worst head parity, PASS/FAIL and why."""
        head = (
            f"{'name':<13} {'device':<20} {'delegate':<9} {'AP':>7} {'host AP':>7} {'drop':>6} {'vs host':>7} "
            f"{'max |Δ|':>9}  result"
        )
        lines = [f"{self.variant} on {self.dataset} ({self.images} val images)", head, "-" * len(head)]
        for c in map(self.cell, self.rows):
            if c["status"] != "done":
                lines.append(f"{c['name']:<13} {c['device_serial']:<20.20} {c['delegate']:<9} {c['status']}"
                             + (f": {c['error']}" if c["error"] else ""))  # fmt: skip
                continue
            lines.append(
                f"{c['name']:<13} {c['device_serial']:<20.20} {c['delegate']:<9} {100 * c['mask_ap']:>7.2f} "
                f"{100 * c['host_ap']:>7.2f} {100 * c['mask_ap_drop']:>6.2f} {100 * c['host_ap_drop']:>7.2f} "
                f"{max(c['parity'].values(), default=0.0):>9.2e}  "
                + ("PASS" if c["passed"] else "FAIL: " + "; ".join(c["failures"]))
            )
        lines.append("PASSED" if self.passed else "FAILED: a cell is not done or exceeded device_ap_drop_max")
        return "\n".join(lines)


def run_validate_device(
    export_dir: Path,
    data: Path,
    devices: list[Device],
    store: ResultStore,
    *,
    delegates: list[str],
    threads: int = 4,
    max_images: int = 0,
    apk: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
) -> DeviceValidation:
    """Measure every pending accuracy cell (each .tflite file × device × delegate) and read them all back."""
    from blitzmask_deploy.core.cards import load_numerics
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.validate.export_dir import check_categories

    manifest = load_manifest(export_dir)
    root = manifest_path(export_dir).parent
    files = [(f, verify_file(root, f)) for f in manifest.files if f.format == "tflite"]
    if not files:
        raise BadInput(f"{export_dir}: the manifest lists no .tflite files to run on a device")
    dataset = CocoDataset.from_split(Path(data), "val")
    check_categories(manifest, dataset, data)
    count = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    digest = data_digest(dataset, count)
    numerics = load_numerics(manifest.variant)
    outcome = DeviceValidation(
        variant=manifest.variant,
        dataset=str(data),
        images=count,
        store=store.path,
        rows=[],
        budgets={f.precision: numerics.max_device_drop_fraction(f.precision) for f, _ in files},
    )
    plans: list[tuple[Device, list[AccuracyCellSpec]]] = []
    for device in devices:
        try:
            info = device.info()
        except DeviceError as err:
            outcome.gone[device.serial] = str(err)
            continue
        plans.append((device, [
            AccuracyCellSpec(str(path), f.sha256, f.name, manifest.variant, f.precision, device.serial, device.kind,
                             info.get("model"), info.get("fingerprint"), delegate, threads, str(data), count, digest)
            for f, path in files for delegate in delegates
        ]))  # fmt: skip
    keys = [c.key for _, cells in plans for c in cells]
    store.add_pending([c for _, cells in plans for c in cells])
    todo = [(d, c) for d, cells in plans for c in cells if store.status(c.key, TABLE) == "pending"]
    outcome.skipped = len(keys) - len(todo)
    if todo:
        run = _Measurement(export_dir, dataset, count, digest, store, threads, apk, progress, log)
        with renewing(store, run.owner, TABLE):
            for entry, path in files:
                cells = [(d, c) for d, c in todo if c.model_sha256 == entry.sha256]
                if cells:
                    run.file(entry, path, cells, outcome)
    outcome.rows = store.cells(keys=keys, table=TABLE)
    return outcome


def data_digest(dataset: CocoDataset, count: int) -> str:
    """sha256 of the val annotation file and of the first `count` image files (what the input packs are made of)."""
    parts = [sha256_file(dataset.ann_path), str(count)]
    parts += [sha256_file(dataset.image_path(i)) for i in range(count)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _Measurement:
    """Measuring the pending cells of one run: the input packs, the host's outputs per file and the checkpoint's AP,
    each made once and only when a cell this run claimed needs it."""

    def __init__(
        self,
        export_dir: Path,
        dataset: CocoDataset,
        count: int,
        digest: str,
        store: ResultStore,
        threads: int,
        apk: Path | None,
        progress: bool,
        log: Callable[[str], None],
    ) -> None:
        self.export_dir, self.dataset, self.count, self.digest, self.store = export_dir, dataset, count, digest, store
        self.threads, self.apk, self.progress, self.log = threads, apk, progress, log
        self.owner = new_owner()
        self.cache = store.path.parent / f"{store.path.stem}-inputs"
        self.host = LocalDevice()
        self.apps: set[str] = set()
        self.pushed: dict[tuple[str, str], str] = {}

    @cached_property
    def reference_ap(self) -> float:
        """The checkpoint's AP on the same images: stored by an earlier run, else measured now."""
        stored = _stored_reference_ap(self.store, self.digest)
        return stored if stored is not None else self._checkpoint_ap()

    def _checkpoint_ap(self) -> float:
        from blitzmask_deploy.inference.dataset import evaluate_run, predict_dataset
        from blitzmask_deploy.inference.runtimes import TorchRuntime
        from blitzmask_deploy.validate.export_dir import load_source_checkpoint

        manifest = load_manifest(self.export_dir)
        runtime = TorchRuntime(load_source_checkpoint(manifest), manifest.input_size, threads=self.threads)
        run = predict_dataset(runtime, self.dataset, max_images=self.count, progress=self.progress, desc="checkpoint")
        return float(evaluate_run(run, self.dataset)["mask_ap"])

    def input_pack(self, spec: TensorSpec) -> tuple[Path, str]:
        """The val images for an input spec as one tensor pack, named by image id (written once into the cache, under
        a name of the images and the spec), and its sha256."""
        ident = json.dumps([self.digest, spec.model_dump(mode="json")], sort_keys=True)
        pack = self.cache / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.pack"
        if pack.is_file():
            return pack, sha256_file(pack)
        self.cache.mkdir(parents=True, exist_ok=True)
        partial = self.cache / f".{pack.name}.{uuid.uuid4().hex[:8]}.partial"  # another run may write it too
        try:
            sha256 = write_pack(partial, self.count, self._tensors(spec))
            partial.replace(pack)
        finally:
            partial.unlink(missing_ok=True)
        return pack, sha256

    def _tensors(self, spec: TensorSpec) -> Iterator[tuple[str, np.ndarray]]:
        from blitzmask_deploy.inference.preprocess import preprocess
        from blitzmask_deploy.inference.runtimes import quantize

        for i in range(self.count):
            x, _ = preprocess(self.dataset.read_image(i), spec.shape[1])
            yield str(self.dataset.image_ids[i]), quantize(x, spec)

    def file(
        self, entry: ExportedFile, path: Path, cells: list[tuple[Device, AccuracyCellSpec]], outcome: DeviceValidation
    ) -> None:
        """Measure the cells of one file that this run can claim; a device that goes away is added to
        `outcome.gone`, a cell another run holds is left to it."""
        pack, sha256 = self.input_pack(entry.inputs[0])
        host: tuple[dict[str, dict[str, np.ndarray]], float] | None = None
        for device, cell in cells:
            if device.serial in outcome.gone:
                continue
            if not self.store.claim(cell.key, self.owner, table=TABLE):
                outcome.skipped += 1
                outcome.claimed_elsewhere += self.store.status(cell.key, TABLE) == "pending"
                continue
            where = f"{entry.name} on {device.serial} / {cell.delegate}"
            try:
                result, outputs = self._run(device, cell, pack, sha256)
            except AppOutdated as err:
                raise BadInput(str(err)) from None
            except DeviceGone as err:
                outcome.gone[device.serial] = str(err)
                continue
            except DeviceError as err:
                if not still_alive(device):
                    outcome.gone[device.serial] = str(err)
                    continue
                self.store.fail(cell.key, str(err), TABLE)
                self.log(f"{where}: failed: {' '.join(str(err).split())}")
                outcome.ran += 1
                continue
            outcome.ran += 1
            if result["status"] != "ok":
                self.store.finish_accuracy(cell.key, result, {})
                self.log(f"{where}: {result['status']}: {result.get('error')}")
                continue
            host = host or self._host(entry, path, pack, sha256)
            try:
                heads = _heads(outputs, result, entry)
                max_abs, mean_abs = _parity(host[0], heads)
            except ValueError as err:
                self.store.fail(cell.key, str(err), TABLE)
                self.log(f"{where}: failed: {err}")
                continue
            figures = {"mask_ap": self._ap(heads, entry), "host_ap": host[1], "reference_ap": self.reference_ap,
                       "parity": max_abs, "parity_mean": mean_abs}  # fmt: skip
            self.store.finish_accuracy(cell.key, result, figures)
            if self.progress:
                self.log(f"{where}: mask AP {100 * figures['mask_ap']:.2f} (host {100 * host[1]:.2f})")

    def _host(
        self, entry: ExportedFile, path: Path, pack: Path, sha256: str
    ) -> tuple[dict[str, dict[str, np.ndarray]], float]:
        """The same file on host LiteRT (XNNPACK, the same threads and input pack): its outputs and its AP."""
        result, outputs = self.host.run_accuracy(
            str(path), self._push(self.host, pack, sha256), cell_key=entry.sha256[:32], delegate=HOST_DELEGATE,
            threads=self.threads,
        )  # fmt: skip
        if result["status"] != "ok":
            raise BadInput(f"{entry.name} on host LiteRT: {result['status']}: {result['error']}")
        try:
            heads = _heads(outputs, result, entry)
        except ValueError as err:
            raise BadInput(f"{entry.name} on host LiteRT: {err}") from None
        return heads, self._ap(heads, entry)

    def _push(self, device: Device, pack: Path, sha256: str) -> str:
        if (device.serial, sha256) not in self.pushed:
            self.pushed[device.serial, sha256] = device.push_inputs(pack, sha256)
        return self.pushed[device.serial, sha256]

    def _run(
        self, device: Device, cell: AccuracyCellSpec, pack: Path, sha256: str
    ) -> tuple[dict, dict[str, list[np.ndarray]]]:
        if device.serial not in self.apps:
            device.ensure_app(self.apk)
            self.apps.add(device.serial)
        remote_inputs = self._push(device, pack, sha256)
        remote = device.prepare(Path(cell.model_path), cell.model_sha256)
        self.store.mark_started(cell.key, TABLE)
        return device.run_accuracy(
            remote, remote_inputs, cell_key=cell.key, delegate=cell.delegate, threads=cell.threads
        )

    def _ap(self, heads: dict[str, dict[str, np.ndarray]], entry: ExportedFile) -> float:
        """Mask AP of per-image head outputs, decoded exactly as the host decodes its own."""
        from blitzmask_deploy.data.letterbox import letterbox_info
        from blitzmask_deploy.inference.dataset import PredictionRun, evaluate_run
        from blitzmask_deploy.inference.decode import decode, to_coco_results

        size = entry.inputs[0].shape[1]
        run = PredictionRun()
        for i in range(self.count):
            image_id = self.dataset.image_ids[i]
            height, width, _ = self.dataset.image_shape(i)
            instances = decode(heads[str(image_id)], letterbox_info(height, width, size))
            run.results.extend(to_coco_results(instances, image_id, self.dataset.cat_index_to_id))
            run.image_ids.append(int(image_id))
        return float(evaluate_run(run, self.dataset)["mask_ap"])


def _stored_reference_ap(store: ResultStore, digest: str) -> float | None:
    """The checkpoint AP an earlier run stored for the same images (the checkpoint is the manifest's, by sha256)."""
    done = [r for r in store.cells(status="done", table=TABLE) if r["data_digest"] == digest]
    return done[0]["reference_ap"] if done else None


def _heads(outputs: dict[str, list[np.ndarray]], result: dict, entry: ExportedFile) -> dict[str, dict[str, np.ndarray]]:
    """{image id: {head: float32 tensor}}: raw outputs in output index order, named and dequantised through the
    manifest's output specs; ValueError when the file's outputs are not the manifest's or not finite."""
    import numpy as np

    from blitzmask_deploy.inference.runtimes import dequantize

    by_tensor = {spec.tensor or spec.name: spec for spec in entry.outputs}
    names = [t["name"] for t in result["output_tensors"]]
    unknown = [n for n in names if n not in by_tensor]
    if unknown or len(names) != len(by_tensor):
        raise ValueError(f"output tensors {', '.join(names)} are not the manifest's {', '.join(by_tensor)}")
    specs = [by_tensor[n] for n in names]
    heads = {
        stem: {spec.name: dequantize(array, spec) for spec, array in zip(specs, arrays, strict=True)}
        for stem, arrays in outputs.items()
    }
    broken = {stem: [n for n, t in tensors.items() if not np.isfinite(t).all()] for stem, tensors in heads.items()}
    broken = {stem: names for stem, names in broken.items() if names}
    if broken:
        which = ", ".join(sorted({name for names in broken.values() for name in names}))
        raise ValueError(f"non-finite outputs (NaN or inf) in {which} for {len(broken)} of {len(heads)} images")
    return heads


def _parity(
    host: dict[str, dict[str, np.ndarray]], device: dict[str, dict[str, np.ndarray]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Max and mean |Δ| per head over every image, device vs host."""
    import numpy as np

    from blitzmask_deploy.validate.parity import head_parity

    if set(device) != set(host):
        raise ValueError(f"device outputs cover {len(device)} images, the host's {len(host)}")
    per_image = [head_parity(host[stem], device[stem]) for stem in host]
    heads = list(next(iter(host.values())))
    max_abs = {h: max(m[h] for m, _ in per_image) for h in heads}
    mean_abs = {h: float(np.mean([m[h] for _, m in per_image])) for h in heads}
    return max_abs, mean_abs
