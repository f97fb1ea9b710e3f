"""Peak memory (max RSS) of `blitzmask eval`, `validate` and `train` on a valid COCO dataset and on bad ones: a NaN
polygon coordinate, a huge declared image size, absurd RLE counts. A bad file is refused with one line when it is
opened, so its peak must stay within 2× of the valid case's (the goal), however large the numbers it declares.

Each command runs in its own process; its peak is the ru_maxrss that `wait4` reports for it (and for any child
it waited for, e.g. loader workers).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

TRAIN_IMAGES, VAL_IMAGES, SIZE = 64, 32, 320
REPO = Path(__file__).resolve().parents[1]  # the commands run from here: `-m blitzmask_deploy` is this checkout
GOAL_RATIO = 2.0


def _nan_polygon(coco: dict) -> None:
    coco["annotations"][0]["segmentation"] = [[4.0, 4.0, 40.0, math.nan, 40.0, 40.0]]


def _huge_size(coco: dict) -> None:
    coco["images"][0]["height"] = coco["images"][0]["width"] = 60_000  # 3.6 billion pixels declared


def _absurd_rle(coco: dict) -> None:
    h, w = coco["images"][0]["height"], coco["images"][0]["width"]
    ann = next(a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"])
    ann["segmentation"] = {"size": [h, w], "counts": [0, 10**15, 7, 10**18]}


SPOILERS: dict[str, Callable[[dict], None] | None] = {
    "valid": None,
    "nan-polygon": _nan_polygon,
    "huge-size": _huge_size,
    "absurd-rle": _absurd_rle,
}


def _dataset(valid: Path, target: Path, spoil: Callable[[dict], None] | None) -> Path:
    """A copy of the dataset `valid` with both annotation files spoiled by `spoil`."""
    shutil.copytree(valid, target)
    if spoil is not None:
        for split in ("train", "val"):
            path = target / "annotations" / f"instances_{split}.json"
            coco = json.loads(path.read_text())
            spoil(coco)
            path.write_text(json.dumps(coco))
    return target


def _measure(args: list[object]) -> tuple[int, float, float, str]:
    """(exit code, peak RSS in MiB, seconds, last stderr line) of `python -m blitzmask_deploy ARGS`."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "blitzmask_deploy", *map(str, args)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return proc.returncode, usage.ru_maxrss / 1024, seconds, lines[-1] if lines else ""


def run() -> dict:
    """Peak RSS of each command on each dataset; the ratio of each bad case to the valid one."""
    import torch

    from blitzmask_deploy.core.checkpoints import save_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.data.synthetic import generate_dataset
    from blitzmask_deploy.modeling.registry import create_model
    from tests.support.perturb import perturb_predictions

    results: dict[str, object] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        valid = generate_dataset(base / "valid", train=TRAIN_IMAGES, val=VAL_IMAGES, size=SIZE, seed=0, progress=False)
        val_ds = CocoDataset.from_split(valid, "val")
        torch.manual_seed(0)
        model = create_model("blitzmask-tiny", num_classes=val_ds.num_classes, input_size=SIZE)
        ckpt = save_checkpoint(base / "tiny.pt", model, categories=val_ds.categories)
        gt = json.loads((valid / "annotations" / "instances_val.json").read_text())
        pred = base / "pred.json"
        pred.write_text(json.dumps(perturb_predictions(gt, np.random.default_rng(0))))
        peaks: dict[str, float] = {}
        for case, spoil in SPOILERS.items():
            data = _dataset(valid, base / f"data-{case}", spoil)
            commands = {
                "eval": ["eval", "--gt", data / "annotations" / "instances_val.json", "--pred", pred],
                "validate": ["validate", ckpt, "--data", data],
                "train": ["train", "--data", data, "--model", "blitzmask-tiny", "--out", base / f"run-{case}",
                          "--epochs", 1, "--batch-size", 8, "--input-size", 128, "--workers", 0, "--no-cache"],
            }  # fmt: skip
            for command, args in commands.items():
                code, peak, seconds, last = _measure(args)
                ratio = None if case == "valid" else peak / peaks[command]
                if case == "valid":
                    peaks[command] = peak
                rows.append((command, case, code, peak, ratio, seconds, last))
                key = f"{command}_{case}".replace("-", "_")
                results[f"{key}_peak_mib"] = round(peak, 1)
                results[f"{key}_exit"] = code
                if ratio is not None:
                    results[f"{key}_ratio"] = round(ratio, 3)
    bad = [r for r in rows if r[1] != "valid"]
    results["max_ratio_bad_vs_valid"] = round(max(r[4] for r in bad), 3)
    results["goal_ratio"] = GOAL_RATIO
    results["goal_met"] = results["max_ratio_bad_vs_valid"] <= GOAL_RATIO and all(r[2] == 2 for r in bad)
    table = [f"{'command':<9} {'dataset':<12} {'exit':>4} {'peak MiB':>9} {'× valid':>8} {'s':>6}  last line"]
    for command, case, code, peak, ratio, seconds, last in rows:
        shown = "" if ratio is None else f"{ratio:.2f}"
        table.append(f"{command:<9} {case:<12} {code:>4} {peak:>9.1f} {shown:>8} {seconds:>6.1f}  {last[:90]}")
    print("\n".join(table), file=sys.stderr)
    return results
