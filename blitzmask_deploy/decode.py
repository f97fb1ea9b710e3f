"""Raw head tensors of one image → instances at the original image size (numpy; the same for every runtime).

Peaks are cells equal to their 3×3 neighbourhood maximum; the top-k (≤ 100) above the score threshold become
instances. Each mask is sigmoid(Σ_k coef_k · basis_k) at stride 4, resampled bilinearly straight to the original
image through the letterbox geometry (the same mapping as `transforms.unletterbox_mask`, but only inside the
predicted box when the model has a box head, which crops the mask), then thresholded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blitzmask_deploy.data.coco import masks_to_boxes, masks_to_rle
from blitzmask_deploy.data.targets import BOX_UNIT
from blitzmask_deploy.data.transforms import LetterboxInfo


@dataclass
class Instances:
    """Decoded instances: `masks` bool (N,H,W) at original size, `boxes` float32 (N,4) xyxy original pixels,
    `scores` float32 (N,), `labels` int64 (N,) contiguous class index."""

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _squeeze(array: np.ndarray) -> np.ndarray:
    return array[0] if array.ndim == 4 else array


def max_pool3(heatmap: np.ndarray) -> np.ndarray:
    """3×3 max filter (stride 1, same size) over the first two axes of (h,w,C)."""
    h, w = heatmap.shape[:2]
    padded = np.pad(heatmap, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    rows = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
    return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])[:h, :w]


def _empty(info: LetterboxInfo) -> Instances:
    return Instances(
        masks=np.zeros((0, info.orig_h, info.orig_w), bool),
        boxes=np.zeros((0, 4), np.float32),
        scores=np.zeros(0, np.float32),
        labels=np.zeros(0, np.int64),
    )


def decode(
    outputs: dict[str, np.ndarray],
    info: LetterboxInfo,
    *,
    score_threshold: float = 0.05,
    top_k: int = 100,
    mask_threshold: float = 0.5,
) -> Instances:
    """Decode ONE image's NHWC head outputs (batch dim 1 or none) into instances at the original image size."""
    heatmap = _squeeze(outputs["heatmap"]).astype(np.float32)
    coef = _squeeze(outputs["coefficients"]).astype(np.float32)
    basis = _squeeze(outputs["spanning_set"]).astype(np.float32)
    h, w, num_classes = heatmap.shape
    stride = info.size / h
    peaks = np.where(heatmap == max_pool3(heatmap), heatmap, 0.0).reshape(-1)
    k = min(top_k, peaks.size)
    top = np.argpartition(-peaks, k - 1)[:k]
    top = top[np.argsort(-peaks[top], kind="stable")]
    top = top[peaks[top] >= score_threshold]
    if len(top) == 0:
        return _empty(info)
    cell, labels = np.divmod(top, num_classes)
    ys, xs = np.divmod(cell, w)
    scores = peaks[top]
    logits = basis.reshape(h * w, -1) @ coef[ys, xs].T  # (h*w, N)
    soft = (1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))).T.reshape(-1, h, w)
    inv = 1.0 / info.scale
    if "box" in outputs:
        ltrb = _squeeze(outputs["box"]).astype(np.float32)[ys, xs] * BOX_UNIT
        cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
        boxes = np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], axis=1) * inv
        boxes = np.clip(boxes, 0, [info.orig_w, info.orig_h, info.orig_w, info.orig_h]).astype(np.float32)
    else:
        boxes = None
    rows = _bilinear_taps(info.orig_h, h, info.scale / stride)
    cols = _bilinear_taps(info.orig_w, w, info.scale / stride)
    masks = np.zeros((len(top), info.orig_h, info.orig_w), bool)
    for i in range(len(top)):
        y1, x1, y2, x2 = 0, 0, info.orig_h, info.orig_w
        if boxes is not None:
            bx1, by1, bx2, by2 = boxes[i]
            y1, x1, y2, x2 = int(np.floor(by1)), int(np.floor(bx1)), int(np.ceil(by2)), int(np.ceil(bx2))
        if y2 > y1 and x2 > x1:
            masks[i, y1:y2, x1:x2] = _resample(soft[i], rows, cols, y1, y2, x1, x2) > mask_threshold
    if boxes is None:
        boxes = masks_to_boxes(masks)
    return Instances(masks=masks, boxes=boxes, scores=scores.astype(np.float32), labels=labels.astype(np.int64))


def _bilinear_taps(out_len: int, in_len: int, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source taps (i0, i1, weight of i1) for each of `out_len` output pixels over an `in_len` grid
    whose cells are 1/`step` output pixels wide (pixel centres aligned, edges clamped)."""
    g = np.clip((np.arange(out_len) + 0.5) * step - 0.5, 0, in_len - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_len - 1)
    return i0, i1, (g - i0).astype(np.float32)


def _resample(grid: np.ndarray, rows: tuple, cols: tuple, y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
    """Bilinear upsampling of `grid` (h,w) to the output window [y1:y2, x1:x2] (separable: rows, then columns)."""
    r0, r1, rw = (t[y1:y2] for t in rows)
    c0, c1, cw = (t[x1:x2] for t in cols)
    part = grid[r0] * (1 - rw)[:, None] + grid[r1] * rw[:, None]
    return part[:, c0] * (1 - cw) + part[:, c1] * cw


def to_coco_results(inst: Instances, image_id: int, cat_index_to_id: list[int]) -> list[dict]:
    """COCO result dicts (RLE segmentation, bbox xywh, score, category_id) for one image's instances."""

    if len(inst) == 0:
        return []
    rles = masks_to_rle(inst.masks)
    results = []
    for i, rle in enumerate(rles):
        x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(cat_index_to_id[int(inst.labels[i])]),
                "segmentation": rle,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(float(inst.scores[i]), 5),
            }
        )
    return results
