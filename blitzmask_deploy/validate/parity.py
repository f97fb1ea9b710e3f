"""Per-head numerical parity of an exported file against the PyTorch checkpoint on the same input images."""

from __future__ import annotations

import numpy as np

from blitzmask_deploy.inference.runtimes import Runtime


def parity_inputs(dataset, input_size: int, count: int = 4) -> np.ndarray:
    """The first `count` images of `dataset`, letterboxed as for prediction: (N,S,S,3) float32 in [0,1]."""
    from blitzmask_deploy.inference.preprocess import preprocess

    n = min(count, len(dataset))
    return np.concatenate([preprocess(dataset[i].image, input_size)[0] for i in range(n)])


def head_parity(
    reference: dict[str, np.ndarray], other: dict[str, np.ndarray]
) -> tuple[dict[str, float], dict[str, float]]:
    """Max and mean |Δ| per head between two runtimes' outputs (heads missing from `other` → ValueError)."""
    missing = sorted(set(reference) - set(other))
    if missing:
        raise ValueError(f"outputs lack head(s) {', '.join(missing)}")
    max_abs, mean_abs = {}, {}
    for head, ref in reference.items():
        if other[head].shape != ref.shape:
            raise ValueError(f"head {head}: shape {other[head].shape} differs from the reference {ref.shape}")
        delta = np.abs(other[head].astype(np.float64) - ref.astype(np.float64))
        max_abs[head] = float(delta.max()) if delta.size else 0.0
        mean_abs[head] = float(delta.mean()) if delta.size else 0.0
    return max_abs, mean_abs


def measure_parity(
    reference: Runtime, runtime: Runtime, images: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """Run both runtimes on `images` and compare every head (int8 outputs are already dequantized)."""
    return head_parity(reference(images), runtime(images))
