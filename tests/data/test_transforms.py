"""Training transforms keep image, masks and boxes consistent under flip, scale jitter, letterbox and mosaic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from blitzmask_deploy.core.masks import masks_to_boxes
from blitzmask_deploy.data.coco import GroundTruth
from blitzmask_deploy.data.letterbox import PAD_VALUE, letterbox_info
from blitzmask_deploy.data.transforms import letterbox_sample, mosaic_transform, train_transform

BACKGROUND = (20, 200, 20)
COLOURS = [(250, 10, 10), (10, 10, 250), (250, 250, 10)]


def _scene(h: int = 90, w: int = 140) -> tuple[np.ndarray, GroundTruth]:
    """Flat-coloured objects (one partly hidden behind another, one touching the right edge) on a flat background."""
    image = np.empty((h, w, 3), np.uint8)
    image[:] = BACKGROUND
    yy, xx = np.mgrid[:h, :w]
    shapes = [
        ((yy - 30) ** 2 + (xx - 35) ** 2) < 18**2,
        (yy >= 40) & (yy < h - 10) & (xx >= 45) & (xx < 60),
        (yy >= 10) & (yy < 25) & (xx >= w - 30),
    ]
    masks = []
    for i, shape in enumerate(shapes):
        image[shape] = COLOURS[i]
        for m in masks:
            m &= ~shape  # later objects occlude earlier ones
        masks.append(shape.copy())
    masks = np.stack(masks)
    gt = GroundTruth(masks, masks_to_boxes(masks), np.array([2, 0, 1], np.int64), np.array([False, True, False]))
    return image, gt


def _assert_consistent(image: np.ndarray, gt: GroundTruth, size: int) -> None:
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert gt.masks.shape == (len(gt), size, size) and len(gt.boxes) == len(gt.labels) == len(gt.iscrowd)
    assert all(m.any() for m in gt.masks)
    np.testing.assert_array_equal(gt.boxes, masks_to_boxes(gt.masks))
    colour_of_label = {2: COLOURS[0], 0: COLOURS[1], 1: COLOURS[2]}
    covered = np.zeros((size, size), bool)
    for mask, label in zip(gt.masks, gt.labels, strict=True):
        covered |= mask
        inner = ndimage.binary_erosion(mask, iterations=1)  # bilinear image vs nearest masks: skip the rim
        if inner.sum() >= 4:
            np.testing.assert_allclose(image[inner].mean(0), colour_of_label[int(label)], atol=6)
    outside = ~ndimage.binary_dilation(covered, iterations=1)
    background = (np.abs(image.astype(int) - BACKGROUND).max(-1) < 8) | (image == PAD_VALUE).all(-1)
    assert background[outside].mean() > 0.98


@pytest.mark.parametrize("seed", range(12))
def test_train_transform_keeps_masks_boxes_and_pixels_together(seed: int) -> None:
    image, gt = _scene()
    out, tgt = train_transform(image, gt, 96, np.random.default_rng(seed), scale_range=(0.5, 2.5))
    _assert_consistent(out, tgt, 96)
    kept = {int(lab): bool(c) for lab, c in zip(tgt.labels, tgt.iscrowd, strict=True)}
    assert all(kept[lab] == (lab == 0) for lab in kept)  # crowd flag travels with its instance


def test_flip_mirrors_image_and_masks() -> None:
    image, gt = _scene(64, 64)
    seen = set()
    for seed in range(16):
        out, tgt = train_transform(image, gt, 64, np.random.default_rng(seed), scale_range=(1.0, 1.0))
        flipped = np.array_equal(out, image[:, ::-1])
        assert flipped or np.array_equal(out, image)
        np.testing.assert_array_equal(tgt.masks, gt.masks[:, :, ::-1] if flipped else gt.masks)
        seen.add(flipped)
    assert seen == {True, False}
    out, _ = train_transform(image, gt, 64, np.random.default_rng(0), flip=False, scale_range=(1.0, 1.0))
    np.testing.assert_array_equal(out, image)


def test_instances_that_leave_the_canvas_are_dropped() -> None:
    image, gt = _scene()
    sizes = set()
    for seed in range(30):
        _, tgt = train_transform(image, gt, 48, np.random.default_rng(seed), scale_range=(3.0, 3.0))
        assert all(m.any() for m in tgt.masks)
        sizes.add(len(tgt))
    assert min(sizes) < 3


def test_letterbox_sample_matches_letterbox_geometry() -> None:
    image, gt = _scene(90, 140)
    out, tgt, info = letterbox_sample(image, gt, 64)
    assert info == letterbox_info(90, 140, 64)
    _assert_consistent(out, tgt, 64)
    np.testing.assert_array_equal(tgt.labels, gt.labels)
    np.testing.assert_allclose(tgt.boxes, gt.boxes * info.scale, atol=1.0)
    assert not tgt.masks[:, info.inner_h :].any()
    assert (out[info.inner_h :] == PAD_VALUE).all()


def test_train_transform_of_an_image_without_instances() -> None:
    image, gt = _scene()
    empty = GroundTruth(gt.masks[:0], gt.boxes[:0], gt.labels[:0], gt.iscrowd[:0])
    out, out_gt = train_transform(image, empty, 64, np.random.default_rng(0))
    assert out.shape == (64, 64, 3) and len(out_gt) == 0 and out_gt.masks.shape == (0, 64, 64)


@pytest.mark.parametrize(("grid", "size", "seed"), [(2, 96, 0), (2, 96, 1), (2, 96, 2), (3, 100, 0), (3, 100, 1)])
def test_mosaic_tiles_samples_with_their_instances(grid: int, size: int, seed: int) -> None:
    scenes = [_scene(90, 140), _scene(64, 64), _scene(120, 80), _scene(70, 100)] * 3
    image, gt = mosaic_transform(scenes[: grid * grid], size, np.random.default_rng(seed))
    _assert_consistent(image, gt, size)
    tile = size // grid
    owners = []
    for mask in gt.masks:  # every instance lies inside exactly one tile
        ys, xs = np.nonzero(mask)
        tiles = {(int(y) // tile, int(x) // tile) for y, x in zip(ys, xs, strict=True)}
        assert len(tiles) == 1 and max(*next(iter(tiles))) < grid
        owners.append(next(iter(tiles)))
    assert len(set(owners)) >= grid * grid - 1 and len(gt) <= 3 * grid * grid
    assert (image[grid * tile :] == PAD_VALUE).all() and (image[:, grid * tile :] == PAD_VALUE).all()
    again = mosaic_transform(scenes[: grid * grid], size, np.random.default_rng(seed))
    np.testing.assert_array_equal(again[0], image)


def test_mosaic_needs_a_square_number_of_samples() -> None:
    with pytest.raises(ValueError, match="square number"):
        mosaic_transform([_scene()] * 3, 96, np.random.default_rng(0))
