"""Raw head tensors of one image → instances at the original image size (numpy; the same for every runtime).

Peaks are cells equal to their 3×3 neighbourhood maximum (ties broken in raster order); the top-k (≤ 100)
above the score threshold become instances. Each mask's logits Σ_k coef_k · basis_k at stride 4 are resampled
bilinearly straight to the original image through the letterbox geometry (the same mapping as
`transforms.unletterbox_mask`, but only inside the predicted box when the model has a box head, which crops the
mask) and thresholded at logit(mask_threshold): no sigmoid is computed. Masks stay crops of their box: no
full-size mask is built unless `Instances.masks` is read, and RLE is encoded from the crops.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from blitzmask_deploy.data.coco import crops_to_rle, masks_to_boxes
from blitzmask_deploy.data.targets import BOX_UNIT
from blitzmask_deploy.data.transforms import LetterboxInfo


@dataclass
class Instances:
    """Decoded instances of an image of `image_size` (H, W): `boxes` float32 (N,4) xyxy original pixels,
    `scores` float32 (N,), `labels` int64 (N,) contiguous class index, and each mask as a crop: `crops[i]` bool
    covers `windows[i]` (x1, y1, x2, y2, int64 original pixels; the box rounded outwards) and the mask is empty
    outside it."""

    crops: list[np.ndarray]
    windows: np.ndarray
    image_size: tuple[int, int]
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def masks(self) -> np.ndarray:
        """Full-size bool masks (N,H,W), built on demand (decode itself never needs them)."""
        masks = np.zeros((len(self), *self.image_size), bool)
        for mask, crop, (x1, y1, x2, y2) in zip(masks, self.crops, self.windows, strict=True):
            mask[y1:y2, x1:x2] = crop
        return masks

    def rles(self) -> list[dict]:
        """Compressed COCO RLE (counts as str) of each mask, encoded from the crops."""
        return crops_to_rle(self.crops, self.windows, *self.image_size)


def _squeeze(array: np.ndarray) -> np.ndarray:
    return array[0] if array.ndim == 4 else array


def local_peaks(heatmap: np.ndarray) -> np.ndarray:
    """Bool (h,w,C): cells that equal their 3×3 neighbourhood maximum (CenterNet's max-pool peaks), with ties
    broken in raster order — a cell must also beat its upper-left, upper, upper-right and left neighbours.

    Without the tie-break a plateau of equal scores is all peaks: int8 heatmaps (256 score levels) then turn
    one object into several detections (measured: 5 points of mask AP lost by a trained tiny model)."""
    h, w = heatmap.shape[:2]
    peak = np.ones(heatmap.shape, bool)
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # cell q = p + (dy, dx) comes after p in raster order
        p = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        q = (slice(dy, h), slice(max(0, dx), w + min(0, dx)))
        later_wins = heatmap[q] > heatmap[p]  # q must beat p; p must be at least q
        peak[q] &= later_wins
        peak[p] &= ~later_wins
    return peak


def _empty(info: LetterboxInfo) -> Instances:
    return Instances(
        crops=[],
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
    mask_threshold: float = 0.5,
) -> Instances:
    """Decode ONE image's NHWC head outputs (batch dim 1 or none) into instances at the original image size."""
    heatmap = np.asarray(_squeeze(outputs["heatmap"]), np.float32)
    coef = np.asarray(_squeeze(outputs["coefficients"]), np.float32)
    basis = np.asarray(_squeeze(outputs["spanning_set"]), np.float32)
    h, w, num_classes = heatmap.shape
    stride = info.size / h
    top = np.flatnonzero(local_peaks(heatmap) & (heatmap >= score_threshold))  # flat (y, x, class) indices
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
        ltrb = np.asarray(_squeeze(outputs["box"]), np.float32)[ys, xs] * BOX_UNIT
        cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
        boxes = np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], axis=1) / info.scale
        boxes = np.clip(boxes, 0, [info.orig_w, info.orig_h, info.orig_w, info.orig_h]).astype(np.float32)
        windows = np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1).astype(np.int64)
        windows[:, 2:] = np.maximum(windows[:, 2:], windows[:, :2])
    else:
        boxes = None
        windows = np.tile(np.array([0, 0, info.orig_w, info.orig_h], np.int64), (len(top), 1))
    crops = _paste(coef[ys, xs], basis, windows, info, stride, _logit(mask_threshold))
    if boxes is None:  # windows are the whole image: the crops are the full masks
        boxes = masks_to_boxes(np.stack(crops))
    return Instances(
        crops=crops,
        windows=windows,
        image_size=(info.orig_h, info.orig_w),
        boxes=boxes,
        scores=scores.astype(np.float32),
        labels=labels.astype(np.int64),
    )


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"mask_threshold must be in (0, 1), got {p}")
    return float(np.log(p / (1.0 - p)))


_CHUNK_PIXELS = 1 << 18  # output pixels resampled at once (1 MB of float32)


def _paste(
    coef: np.ndarray, basis: np.ndarray, windows: np.ndarray, info: LetterboxInfo, stride: float, threshold: float
) -> list[np.ndarray]:
    """Mask crops: instance i's logits coef[i] · basis (basis (h,w,K)) at the grid cells under its window
    (x1, y1, x2, y2 original px), resampled bilinearly through the letterbox and thresholded (`threshold` in
    logit units).

    Resampling is linear, so a crop is rows (H×R) @ cell logits (R×C) @ cols (C×W), the two matrices being
    blocks of the image's bilinear weights. Instances are resampled together in groups of similar window size:
    a few batched gathers and matrix products instead of a Python-level resample per instance."""
    h, w, k = basis.shape
    step = info.scale / stride  # grid cells per original pixel
    row_axis, col_axis = _bilinear_axis(info.orig_h, h, step), _bilinear_axis(info.orig_w, w, step)
    x1, y1, x2, y2 = windows.T
    heights, widths = y2 - y1, x2 - x1
    crops = [np.zeros((0, 0), bool)] * len(coef)
    sizes = np.maximum(heights, widths)
    empty = (heights == 0) | (widths == 0)
    # Groups of windows within 2× in size of each other, from the smallest up.
    group = np.floor(np.log2(sizes / max(1, sizes[~empty].min(initial=sizes.max())))).astype(np.int64)
    for i in np.flatnonzero(empty):  # empty windows: nothing to resample
        crops[i], group[i] = np.zeros((heights[i], widths[i]), bool), -1
    chunks = []
    for g in np.unique(group[group >= 0]):
        members = np.flatnonzero(group == g)
        pixels = len(members) * int(heights[members].max()) * int(widths[members].max())
        # Bounded temporaries, which stay in cache; array_split costs as much as a gather, so only when needed.
        chunks += np.array_split(members, -(-pixels // _CHUNK_PIXELS)) if pixels > _CHUNK_PIXELS else [members]
    for idx in chunks:
        row_weights, top, first_row = _block_weights(row_axis, y1[idx], heights[idx])
        col_weights, left, first_col = _block_weights(col_axis, x1[idx], widths[idx])
        n, r, c = len(idx), row_weights.shape[2], col_weights.shape[2]
        # Each R×C block of cells as R rows of C·K contiguous values: every K-th window of the (h, w·K) basis.
        cells = _blocks(basis.reshape(h, w * k), r, c * k, col_step=k)[first_row, first_col]
        logits = (cells.reshape(n, r * c, k) @ coef[idx, :, None]).reshape(n, r, c)
        inside = row_weights @ logits @ col_weights.transpose(0, 2, 1) > threshold
        tops, lefts = (y1[idx] - top).tolist(), (x1[idx] - left).tolist()
        for j, (i, hi, wi) in enumerate(zip(idx.tolist(), heights[idx].tolist(), widths[idx].tolist(), strict=True)):
            crops[i] = inside[j, tops[j] : tops[j] + hi, lefts[j] : lefts[j] + wi]
    return crops


def _bilinear_taps(out_len: int, in_len: int, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source taps (i0, i1, weight of i1) for each of `out_len` output pixels over an `in_len` grid
    whose cells are 1/`step` output pixels wide (pixel centres aligned, edges clamped)."""
    g = np.clip((np.arange(out_len) + 0.5) * step - 0.5, 0, in_len - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_len - 1)
    return i0, i1, (g - i0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _bilinear_axis(out_len: int, in_len: int, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear resampling along one axis: each output pixel's first and last source cell (`_bilinear_taps`),
    and the (out_len, in_len) weight matrix (two entries per row)."""
    i0, i1, weight = _bilinear_taps(out_len, in_len, step)
    matrix = np.zeros((out_len, in_len), np.float32)
    pixels = np.arange(out_len)
    matrix[pixels, i0] = 1 - weight
    matrix[pixels, i1] += weight  # i0 == i1 at a clamped edge: the weights add to 1
    for array in (i0, i1, matrix):
        array.setflags(write=False)  # cached: shared by every decode of an image of this size
    return i0, i1, matrix


def _block_weights(
    axis: tuple[np.ndarray, np.ndarray, np.ndarray], start: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For n windows of `length` pixels from `start` along an axis (`_bilinear_axis`): blocks of L = max(length)
    pixels holding them (moved back from the image's far edge where needed) and the R grid cells those blocks
    read. Returns the blocks' weights (n, L, R), first pixels (n,) and first cells (n,)."""
    i0, i1, matrix = axis
    out_len, grid_len = matrix.shape
    span = int(length.max())
    first_pixel = np.minimum(start, out_len - span)
    first_cell = i0[first_pixel]
    cells = int((i1[first_pixel + span - 1] - first_cell).max()) + 1
    first_cell = np.minimum(first_cell, grid_len - cells)
    weights = _blocks(matrix, span, cells)[first_pixel, first_cell]
    return weights, first_pixel, first_cell


def _blocks(a: np.ndarray, rows: int, cols: int, col_step: int = 1) -> np.ndarray:
    """Read-only view [i, j] → the rows×cols block of 2-d `a` at row i, column j·col_step (sliding_window_view
    without its per-call checks, which cost more than the gathers here)."""
    s0, s1 = a.strides
    shape = (a.shape[0] - rows + 1, (a.shape[1] - cols) // col_step + 1, rows, cols)
    return as_strided(a, shape, (s0, s1 * col_step, s0, s1), writeable=False)


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
