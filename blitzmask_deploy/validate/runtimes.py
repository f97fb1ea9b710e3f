"""One predict API over runtimes: each runtime maps a batch of NHWC float inputs to NHWC head tensors.

Every runtime takes `images` of shape (N, S, S, 3), float32 in [0, 1] (see data/transforms.py), and returns
a dict keyed by head name (`heatmap`, `coefficients`, `spanning_set`, optionally `box`) of float32 arrays in
NHWC layout, so that decode.py never needs to know which runtime produced them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Runtime(Protocol):
    """Anything that maps (N,S,S,3) float32 images to a dict of NHWC float32 head tensors."""

    name: str
    input_size: int

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run inference on a batch."""
        ...


class TorchRuntime:
    """PyTorch eager inference of a BlitzMask module (NCHW inside, NHWC at the boundary)."""

    name = "torch"

    def __init__(self, model: Any, input_size: int, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.input_size = input_size

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            out = self.model(x)
        return {k: v.permute(0, 2, 3, 1).contiguous().numpy() for k, v in out.items()}
