"""Training-time geometry of an image and its ground truth.

`letterbox_sample` and `train_transform` apply the letterbox (data/letterbox.py) or a jittered version of it to an
image and its ground truth (masks resampled nearest-neighbour, boxes recomputed as the tight boxes of the moved
masks); `mosaic_transform` tiles several training samples into one input.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from blitzmask_deploy.core.masks import masks_to_boxes
from blitzmask_deploy.data.coco import GroundTruth
from blitzmask_deploy.data.letterbox import PAD_VALUE, LetterboxInfo, letterbox_image


def letterbox_sample(image: np.ndarray, gt: GroundTruth, size: int) -> tuple[np.ndarray, GroundTruth, LetterboxInfo]:
    """Letterbox an image and its ground truth into a `size` square (instances that vanish are dropped)."""
    out, info = letterbox_image(image, size)
    return out, _place_gt(gt, size, info.scale, 0, 0, flip=False), info


def train_transform(
    image: np.ndarray,
    gt: GroundTruth,
    size: int,
    rng: np.random.Generator,
    *,
    flip: bool = True,
    scale_range: tuple[float, float] = (0.5, 1.5),
) -> tuple[np.ndarray, GroundTruth]:
    """Random horizontal flip and scale jitter around the letterbox scale, then a random crop/placement.

    The image is scaled by `letterbox scale × U(scale_range)`, flipped with probability 0.5 when `flip`, and
    placed at a random offset in a `size`×`size` canvas (cropped when larger, padded grey when smaller).
    Masks, boxes and labels follow the same mapping; instances with no pixel left are dropped.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w) * float(rng.uniform(*scale_range))
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    dy = int(rng.integers(min(0, size - new_h), max(0, size - new_h) + 1))
    dx = int(rng.integers(min(0, size - new_w), max(0, size - new_w) + 1))
    do_flip = flip and rng.random() < 0.5
    src = Image.fromarray(image)
    if do_flip:
        src = src.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    ty0, tx0 = max(dy, 0), max(dx, 0)
    ty1, tx1 = min(dy + new_h, size), min(dx + new_w, size)
    # resample only the part that lands on the canvas (PIL's box: same pixels as resizing all, then cropping)
    sy, sx = h / new_h, w / new_w
    box = ((tx0 - dx) * sx, (ty0 - dy) * sy, (tx1 - dx) * sx, (ty1 - dy) * sy)
    out[ty0:ty1, tx0:tx1] = np.asarray(src.resize((tx1 - tx0, ty1 - ty0), Image.BILINEAR, box=box))
    return out, _place_gt(gt, size, scale, dy, dx, flip=do_flip, inner=(new_h, new_w))


def mosaic_transform(
    samples: list[tuple[np.ndarray, GroundTruth]],
    size: int,
    rng: np.random.Generator,
    *,
    scale_range: tuple[float, float] = (0.75, 2.0),
) -> tuple[np.ndarray, GroundTruth]:
    """Tile `samples` (grid² of them: 4 or 9) row-major into one `size`×`size` input (YOLO's mosaic, on a grid).

    Each sample goes through `train_transform` at the tile size `size // grid`, with its scale jitter around the
    tile's letterbox scale (the default, 0.75–2, keeps objects at 0.375–1× their full-input size in a 2×2 grid);
    the ground truth is the union of the tiles' instances, moved to their tile. Any pixels the tiles leave over
    are padded grey.
    """
    grid = math.isqrt(len(samples))
    if grid < 2 or grid * grid != len(samples):
        raise ValueError(f"a mosaic takes a square number (≥ 4) of samples, not {len(samples)}")
    tile = size // grid
    image = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    masks, boxes, labels, crowd = [], [], [], []
    for k, (src, gt) in enumerate(samples):
        tile_image, tile_gt = train_transform(src, gt, tile, rng, scale_range=scale_range)
        y0, x0 = (k // grid) * tile, (k % grid) * tile
        image[y0 : y0 + tile, x0 : x0 + tile] = tile_image
        placed = np.zeros((len(tile_gt), size, size), dtype=bool)
        placed[:, y0 : y0 + tile, x0 : x0 + tile] = tile_gt.masks
        masks.append(placed)
        boxes.append(tile_gt.boxes + np.array([x0, y0, x0, y0], np.float32))
        labels.append(tile_gt.labels)
        crowd.append(tile_gt.iscrowd)
    gt = GroundTruth(np.concatenate(masks), np.concatenate(boxes), np.concatenate(labels), np.concatenate(crowd))
    return image, gt


def _place_gt(
    gt: GroundTruth,
    size: int,
    scale: float,
    dy: int,
    dx: int,
    *,
    flip: bool,
    inner: tuple[int, int] | None = None,
) -> GroundTruth:
    """Resample masks onto a `size` canvas where source pixel (y, x) lands at (y·scale + dy, x·scale + dx)."""
    h, w = gt.masks.shape[1:]
    inner_h, inner_w = inner or (min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale))))
    ty, tx = np.arange(size) - dy, np.arange(size) - dx
    sy = np.floor((ty + 0.5) * h / inner_h).astype(np.int64)
    sx = np.floor((tx + 0.5) * w / inner_w).astype(np.int64)
    valid_y = (ty >= 0) & (ty < inner_h)
    valid_x = (tx >= 0) & (tx < inner_w)
    if flip:
        sx = w - 1 - sx
    masks = np.zeros((len(gt), size, size), dtype=bool)
    rows, cols = np.flatnonzero(valid_y), np.flatnonzero(valid_x)
    if len(gt) and len(rows) and len(cols):
        # Two 1-d takes are ~10× faster than one 2-d fancy index over (N, rows, cols).
        picked = gt.masks.take(sy[rows], axis=1).take(sx[cols], axis=2)
        masks[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = picked
    keep = masks.any(axis=(1, 2))
    masks = masks[keep]
    return GroundTruth(masks, masks_to_boxes(masks), gt.labels[keep], gt.iscrowd[keep])
