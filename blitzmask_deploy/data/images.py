"""Image files as uint8 RGB arrays: the one reader for datasets, prediction and calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blitzmask_deploy.core.errors import BadInput

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: Path) -> np.ndarray:
    """An image file as (H,W,3) uint8 RGB; missing or undecodable → BadInput naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise BadInput(f"{path}: not a readable image ({type(err).__name__}: {str(err)[:120]})") from None
