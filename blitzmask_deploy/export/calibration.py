"""Calibration images for int8: N training images, letterboxed exactly as validation feeds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.images import IMAGE_SUFFIXES


def calibration_files(data: Path, count: int) -> list[Path]:
    """Up to `count` image files, evenly spread over `data/images/train` (a COCO dataset) or over `data` itself."""
    root = data / "images" / "train" if (data / "images" / "train").is_dir() else data
    if not root.is_dir():
        raise BadInput(f"calibration data not found: {data} (give a dataset directory or a folder of images)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BadInput(f"no calibration images (*.png, *.jpg, ...) under {root}")
    if count <= 0:
        raise BadInput(f"--calib-images must be positive, got {count}")
    picks = np.linspace(0, len(files) - 1, num=min(count, len(files))).round().astype(int)
    return [files[i] for i in dict.fromkeys(picks.tolist())]


def calibration_images(data: Path, input_size: int, count: int, *, progress: bool = True) -> list[np.ndarray]:
    """(1,S,S,3) float32 arrays in [0,1] of up to `count` images from `data` (see calibration_files)."""
    from tqdm import tqdm

    from blitzmask_deploy.data.images import read_image
    from blitzmask_deploy.inference.preprocess import preprocess

    files = calibration_files(data, count)
    return [
        preprocess(read_image(path), input_size)[0]
        for path in tqdm(files, desc="calibration images", disable=None if progress else True, leave=False)
    ]
