"""The square letterbox: the geometry shared by training, prediction and every runtime.

Images are uint8 HWC RGB. The letterbox scales the longest side to `size`, places the image at the
top-left corner and pads the rest with a constant grey, so undoing it is a crop and a resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image of `orig_h`×`orig_w` was placed in a `size`×`size` input."""

    orig_h: int
    orig_w: int
    size: int
    scale: float

    @property
    def inner_h(self) -> int:
        """Rows of the input covered by the image (the rest is padding)."""
        return min(self.size, max(1, round(self.orig_h * self.scale)))

    @property
    def inner_w(self) -> int:
        """Columns of the input covered by the image."""
        return min(self.size, max(1, round(self.orig_w * self.scale)))


def letterbox_info(orig_h: int, orig_w: int, size: int) -> LetterboxInfo:
    """The letterbox of an `orig_h`×`orig_w` image into a `size` square."""
    return LetterboxInfo(orig_h, orig_w, size, size / max(orig_h, orig_w))


def letterbox_image(image: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize `image` (H,W,3 uint8) into a padded `size`×`size` square; return it and its geometry."""
    info = letterbox_info(image.shape[0], image.shape[1], size)
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    resized = Image.fromarray(image).resize((info.inner_w, info.inner_h), Image.BILINEAR)
    out[: info.inner_h, : info.inner_w] = np.asarray(resized)
    return out, info


def unletterbox_mask(mask: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Map a mask (or soft mask) over the whole letterboxed input back to the original image size."""
    ys = mask.shape[0] / info.size
    xs = mask.shape[1] / info.size
    crop = mask[: max(1, round(info.inner_h * ys)), : max(1, round(info.inner_w * xs))]
    img = Image.fromarray(crop.astype(np.float32), mode="F")
    return np.asarray(img.resize((info.orig_w, info.orig_h), Image.BILINEAR))
