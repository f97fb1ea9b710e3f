"""Image files as uint8 RGB arrays, as a camera or an annotation tool shows them: the one reader for datasets,
prediction and calibration.

EXIF orientation is applied (annotation tools draw on the rotated image); grayscale, palette, bilevel and CMYK
images become RGB; an alpha channel is dropped; 16-bit and 32-bit grayscale (e.g. 16-bit PNG) is scaled to 8 bits,
not clipped. A missing, unreadable or absurdly large image (a decompression bomb) is BadInput naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from blitzmask_deploy.core.errors import BadInput

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_HIGH_BIT_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535}


def read_image(path: Path) -> np.ndarray:
    """An image file as (H,W,3) uint8 RGB, EXIF orientation applied; missing or undecodable → BadInput."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return _to_rgb(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError as err:
        raise BadInput(f"{path}: image too large to decode safely ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise BadInput(f"{path}: not a readable image ({type(err).__name__}: {str(err)[:120]})") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image in any mode → (H,W,3) uint8 RGB."""
    if img.mode in _HIGH_BIT_MODES:  # 16-bit grayscale (PNG opens as I;16 or I): scale to 8 bits
        values = np.asarray(img, dtype=np.float64)
        gray = np.clip(np.round(values * (255.0 / _HIGH_BIT_MODES[img.mode])), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "F":  # 32-bit float grayscale: taken as [0, 1]
        gray = np.clip(np.round(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # a palette with a transparent entry converts through RGBA without a warning
    return np.asarray(img.convert("RGB"))
