"""Shared test helpers and fixtures: `run_cli`, a procedural COCO dataset, a tiny checkpoint and its export, a
small .tflite, and the emulated adb device — each made once per test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from blitzmask_deploy.core.openmp import set_openmp_wait_policy

set_openmp_wait_policy()  # as the CLI does, before any test imports torch


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The suite never reaches the user's own adb server or phones: every command it runs looks for the default adb
# server on a port nothing listens on; tests that need adb start their own private server (the emulated device).
os.environ["ANDROID_ADB_SERVER_PORT"] = str(_unused_port())


def cli_command(*args: object, module: str = "blitzmask_deploy") -> list[str]:
    """The argv of `python -m blitzmask_deploy ARGS...` (for a test that starts the CLI itself, e.g. to kill it)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_cli(
    *args: object, timeout: float = 300, env: dict[str, str] | None = None, module: str = "blitzmask_deploy"
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ARGS in a fresh interpreter (text output; exit codes are for the test to check)."""
    command = cli_command(*args, module=module)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-train / 8-val procedural COCO dataset at 128×128 (root dir with images/ and annotations/)."""
    from blitzmask_deploy.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, train=24, val=8, size=128, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained blitzmask-tiny (64×64 input, the dataset's classes) saved as a checkpoint."""
    import torch

    from blitzmask_deploy.core.checkpoints import save_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.modeling.registry import create_model

    torch.manual_seed(0)
    dataset = CocoDataset.from_split(synth_dataset, "val")
    model = create_model("blitzmask-tiny", num_classes=dataset.num_classes, input_size=64)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, categories=dataset.categories)


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint: Path, synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_checkpoint` exported to fp32, fp16, int8 (8 calibration images) and ONNX."""
    import torch

    from blitzmask_deploy.export.pipeline import export_checkpoint

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("export")
    export_checkpoint(tiny_checkpoint, out, calib=synth_dataset, calib_images=8, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, export) of a blitzmask-tiny with a real mask AP (about 0.6 on its val split), for checks a model
    without AP cannot show (an AP that drops): trained on 8 easy images (the largest of the single-shape images of a
    400-image synthetic split at 64×64), which are its val split too, for 100 steps, and exported to fp32. About
    30 s on 2 cores; the same weights every run."""
    import json
    import shutil

    import torch

    from blitzmask_deploy.data.synthetic import generate_dataset
    from blitzmask_deploy.export.pipeline import export_checkpoint
    from blitzmask_deploy.train.config import TrainConfig
    from blitzmask_deploy.train.trainer import train

    root = tmp_path_factory.mktemp("trained")
    source = generate_dataset(root / "source", train=0, val=400, size=64, seed=0, progress=False, workers=1)
    coco = json.loads((source / "annotations" / "instances_val.json").read_text())
    areas: dict[int, list[float]] = {}
    for ann in coco["annotations"]:
        areas.setdefault(ann["image_id"], []).append(ann["area"])
    easy = sorted((a[0], i) for i, a in areas.items() if len(a) == 1)[-8:]
    images = [img for img in coco["images"] if img["id"] in {i for _, i in easy}]
    anns = [ann for ann in coco["annotations"] if ann["image_id"] in {i for _, i in easy}]
    data = root / "data"
    for split, copies in (("train", 25), ("val", 1)):  # 25 copies: an epoch of 25 steps of 8
        (data / "images" / split).mkdir(parents=True)
        for img in images:
            shutil.copy(source / "images" / "val" / img["file_name"], data / "images" / split / img["file_name"])
        split_coco = {
            **coco,
            "images": [{**img, "id": img["id"] * copies + c} for c in range(copies) for img in images],
            "annotations": [{**a, "id": a["id"] * copies + c, "image_id": a["image_id"] * copies + c}
                            for c in range(copies) for a in anns],
        }  # fmt: skip
        (data / "annotations").mkdir(exist_ok=True)
        (data / "annotations" / f"instances_{split}.json").write_text(json.dumps(split_coco))
    threads = torch.get_num_threads()
    try:
        recipe = {"epochs": 4, "batch_size": 8, "lr": 2e-2, "optimizer": "adamw", "mosaic": 0.0, "threads": 2}
        train(TrainConfig(data, "blitzmask-tiny", root / "run", input_size=64, workers=0, progress=False, **recipe))
    finally:
        torch.set_num_threads(threads)  # the trainer sets it for the whole process
    export_checkpoint(root / "run" / "best.pt", root / "export", formats=["fp32"], progress=False)
    return data, root / "export"


@pytest.fixture(scope="session")
def bench_tflite() -> Path:
    """A 64×64 NHWC float conv-net .tflite (a few ms per run on one CPU thread)."""
    from tests.support.tflite_models import build_tflite

    return build_tflite()


@pytest.fixture(scope="session")
def emulated_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The started EmulatedDevice (serial `device.serial`, adb server `device.adb_address`), shared by the session.

    Ports start at 5601 / 5137 and move up when another run holds them (start() also retries once on the next
    pair). Skipped only where the device cannot run here: the Debian packages cannot be fetched, or no root /
    namespaces for chroot and unshare.
    """
    from tests.support.emulated.device import EmulatedDevice, EmulatorUnavailable, free_port_pair, reap_stale

    reap_stale()  # leftovers of killed runs first, so that their ports are free again
    port, adb_port = free_port_pair()
    device = EmulatedDevice(tmp_path_factory.mktemp("emulated-device"), port=port, adb_port=adb_port)
    try:
        device.start()
    except EmulatorUnavailable as err:
        device.stop()
        pytest.skip(f"emulated device unavailable: {err}")
    except BaseException:
        device.stop()
        raise
    yield device
    device.stop()


@pytest.fixture(scope="session")
def faulty_emulated_device(emulated_device: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A second emulated device (started after `emulated_device`, which proves this machine can run one) whose XNNPACK
    delegate adds noise to every output tensor and whose CPU delegate zeroes the first output (the heatmap)."""
    from tests.support.emulated.device import EmulatedDevice, free_port_pair

    port, adb_port = free_port_pair()
    device = EmulatedDevice(
        tmp_path_factory.mktemp("faulty"), port=port, adb_port=adb_port, faults={"xnnpack": "noise", "cpu": "zero"}
    )
    try:
        device.start()
        yield device
    finally:
        device.stop()


@pytest.fixture(scope="session")
def apk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dummy benchmark APK of the app's current version (protocol.APP_VERSION_CODE) with its build sidecar."""
    import json

    from blitzmask_deploy.bench.protocol import APP_VERSION, APP_VERSION_CODE, PACKAGE
    from tests.support.fake_apk import write_apk

    path = write_apk(tmp_path_factory.mktemp("apk") / "blitzmask-bench.apk", PACKAGE, APP_VERSION_CODE, APP_VERSION)
    path.with_name(path.name + ".json").write_text(json.dumps({"package": PACKAGE, "version_code": APP_VERSION_CODE}))
    return path
