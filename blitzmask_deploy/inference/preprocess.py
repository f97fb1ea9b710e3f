"""Image → model input: the letterbox into the model's square input, scaled to float32 in [0, 1] (NHWC).

Every runtime, the parity check and int8 calibration feed the model through `preprocess`, so they all see the
same pixels; training uses the same letterbox geometry (data/letterbox.py) and the same scaling.
"""

from __future__ import annotations

import numpy as np

from blitzmask_deploy.data.letterbox import LetterboxInfo, letterbox_image


def to_input_tensor(image: np.ndarray) -> np.ndarray:
    """uint8 HWC → float32 HWC in [0, 1]: the model's input convention (no mean/std in the graph)."""
    return image.astype(np.float32) / 255.0


def preprocess(image: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxInfo]:
    """(H,W,3) uint8 RGB → a (1,size,size,3) float32 batch of one, and where the image sits in it."""
    boxed, info = letterbox_image(image, size)
    return to_input_tensor(boxed)[None], info
