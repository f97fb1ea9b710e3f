"""Raw head tensors of one image → instances at the original image size (numpy; the same for every runtime).

Each heatmap value is first scaled by (value / its cell's largest value over the classes)^class_power, so
that where several classes fire on one object the strongest keeps its score and the others rank lower. Peaks
are cells equal to their 3×3 neighbourhood maximum (ties broken in raster order); the top-k (≤ 100) above the
score threshold become instances. Each mask's logits Σ_k coef_k · basis_k at stride 4 are resampled
bilinearly straight to the original image through the letterbox geometry (the same mapping as
`transforms.unletterbox_mask`, but only inside the predicted box when the model has a box head, which crops the
mask) and thresholded at logit(mask_threshold): no sigmoid is computed per pixel. An instance's score is its
peak times its mask score (SOLOv2's "maskness": the mean probability of the grid cells on its mask); instances
whose score falls below the score threshold are dropped and the rest sorted by score. Masks stay crops of their
box: no full-size mask is built unless `Instances.masks` is read, and RLE is encoded from the crops. The per-pixel
loops (peaks, pasting, RLE runs) are compiled: `decode_kernels`.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from blitzmask_deploy.core.masks import masks_to_boxes, runs_to_rle
from blitzmask_deploy.data.letterbox import LetterboxInfo
from blitzmask_deploy.data.targets import BOX_UNIT
from blitzmask_deploy.inference.decode_kernels import (
    MAX_CLASS_POWER,
    mask_scores,
    paste_crops,
    peak_indices,
    rle_runs,
    suppress_other_classes,
)


@dataclass
class Instances:
    """Decoded instances of an image of `image_size` (H, W): `boxes` float32 (N,4) xyxy original pixels,
    `scores` float32 (N,), `labels` int64 (N,) contiguous class index, and each mask as a crop of its window:
    `windows[i]` = (x1, y1, x2, y2) (int64 original pixels; the box rounded outwards) and the mask is empty
    outside it. `crop_pixels` holds every window's mask pixels (bool), row-major, one window after another."""

    crop_pixels: np.ndarray
    windows: np.ndarray
    image_size: tuple[int, int]
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def crops(self) -> list[np.ndarray]:
        """Each mask inside its window: bool (y2 - y1, x2 - x1) views of `crop_pixels`."""
        crops, at = [], 0
        for x1, y1, x2, y2 in self.windows.tolist():
            crops.append(self.crop_pixels[at : at + (y2 - y1) * (x2 - x1)].reshape(y2 - y1, x2 - x1))
            at += (y2 - y1) * (x2 - x1)
        return crops

    @property
    def masks(self) -> np.ndarray:
        """Full-size bool masks (N,H,W), built on demand (decode itself never needs them)."""
        masks = np.zeros((len(self), *self.image_size), bool)
        for mask, crop, (x1, y1, x2, y2) in zip(masks, self.crops, self.windows, strict=True):
            mask[y1:y2, x1:x2] = crop
        return masks

    def rles(self) -> list[dict]:
        """Compressed COCO RLE (counts as str) of each mask, from the crops' runs (the same strings as encoding
        the full masks)."""
        height, width = self.image_size
        counts, offsets = rle_runs(self.crop_pixels, self.windows, height, width)
        return runs_to_rle([counts[a:b].tolist() for a, b in itertools.pairwise(offsets.tolist())], height, width)


def _squeeze(array: np.ndarray) -> np.ndarray:
    return array[0] if array.ndim == 4 else array


def _empty(info: LetterboxInfo) -> Instances:
    return Instances(
        crop_pixels=np.zeros(0, bool),
        windows=np.zeros((0, 4), np.int64),
        image_size=(info.orig_h, info.orig_w),
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
    mask_threshold: float = 0.4,
    class_power: int = 3,
) -> Instances:
    """Decode ONE image's NHWC head outputs (batch dim 1 or none) into instances at the original image size.
    `class_power` (0 to MAX_CLASS_POWER) is the exponent of the cross-class suppression; 0 leaves the heatmap
    as the model gave it."""
    heads = ("heatmap", "coefficients", "spanning_set")  # contiguous float32: what the compiled kernels take
    heatmap, coef, basis = (np.ascontiguousarray(_squeeze(outputs[name]), np.float32) for name in heads)
    h, w, num_classes = heatmap.shape
    stride = info.size / h
    if not 0 <= class_power <= MAX_CLASS_POWER:
        raise ValueError(f"class_power must be in 0..{MAX_CLASS_POWER}, got {class_power}")
    if class_power:
        heatmap = suppress_other_classes(heatmap, class_power, np.float32(score_threshold))
    top = peak_indices(heatmap, np.float32(score_threshold))  # flat (y, x, class) indices
    scores = heatmap.reshape(-1)[top]
    if len(top) > top_k:
        best = np.argpartition(-scores, top_k - 1)[:top_k]
        top, scores = top[best], scores[best]
    order = np.argsort(-scores, kind="stable")
    top, scores = top[order], scores[order]
    if len(top) == 0:
        return _empty(info)
    cell, labels = np.divmod(top, num_classes)
    ys, xs = np.divmod(cell, w)
    if "box" in outputs:
        ltrb = np.maximum(np.asarray(_squeeze(outputs["box"]), np.float32)[ys, xs], 0) * BOX_UNIT  # the head's ReLU
        cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
        boxes = np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], axis=1) / info.scale
        boxes = np.clip(boxes, 0, [info.orig_w, info.orig_h, info.orig_w, info.orig_h]).astype(np.float32)
        windows = np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1).astype(np.int64)
        windows[:, 2:] = np.maximum(windows[:, 2:], windows[:, :2])
    else:
        boxes = None
        windows = np.tile(np.array([0, 0, info.orig_w, info.orig_h], np.int64), (len(top), 1))
    rows, cols = grid_taps(info, h, w)
    threshold = np.float32(_logit(mask_threshold))
    mask_score, logits, starts = mask_scores(coef[ys, xs], basis, windows, rows, cols, threshold)
    scores = (scores * mask_score).astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= score_threshold]
    windows, boxes = windows[order], None if boxes is None else boxes[order]
    crop_pixels = paste_crops(logits, starts[order], windows, rows, cols, threshold)
    if boxes is None:  # windows are the whole image: the crops are the full masks
        boxes = masks_to_boxes(crop_pixels.reshape(len(order), info.orig_h, info.orig_w))
    return Instances(
        crop_pixels=crop_pixels,
        windows=windows,
        image_size=(info.orig_h, info.orig_w),
        boxes=boxes,
        scores=scores[order],
        labels=labels[order].astype(np.int64),
    )


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"mask_threshold must be in (0, 1), got {p}")
    return float(np.log(p / (1.0 - p)))


def grid_taps(info: LetterboxInfo, h: int, w: int) -> tuple[tuple, tuple]:
    """Bilinear taps (`_bilinear_taps`) of the original image's rows and columns over the (h, w) output grid."""
    step = info.scale / (info.size / h)  # grid cells per original pixel
    return _bilinear_taps(info.orig_h, h, step), _bilinear_taps(info.orig_w, w, step)


@functools.lru_cache(maxsize=8)
def _bilinear_taps(out_len: int, in_len: int, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source taps (i0, i1, weight of i1) for each of `out_len` output pixels over an `in_len` grid
    whose cells are 1/`step` output pixels wide (pixel centres aligned, edges clamped). Cached per image size:
    the arrays are read-only."""
    g = np.clip((np.arange(out_len) + 0.5) * step - 0.5, 0, in_len - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_len - 1)
    taps = i0, i1, (g - i0).astype(np.float32)
    for array in taps:
        array.setflags(write=False)
    return taps


def to_coco_results(inst: Instances, image_id: int, cat_index_to_id: list[int]) -> list[dict]:
    """COCO result dicts (RLE segmentation, bbox xywh, score, category_id) for one image's instances."""

    if len(inst) == 0:
        return []
    rles = inst.rles()
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
