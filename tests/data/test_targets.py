"""Training targets: Gaussian peaks at mask centres, flat indices, stride-4 masks, ltrb boxes, padded collation."""

from __future__ import annotations

import numpy as np
import pytest

from blitzmask_deploy.core.masks import masks_to_boxes
from blitzmask_deploy.data.targets import BOX_UNIT, build_targets, collate_targets, gaussian_radius


def _rect(size: int, y1: int, x1: int, y2: int, x2: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y1:y2, x1:x2] = True
    return m


def test_single_instance_targets() -> None:
    size, stride = 64, 4
    mask = _rect(size, 8, 16, 40, 48)  # centre of mass (24, 32) px → cell (6, 8)
    box = np.array([[16, 8, 48, 40]], np.float32)
    t = build_targets(mask[None], box, np.array([2]), num_classes=3, input_size=size, stride=stride)
    assert t.heatmap.shape == (3, 16, 16)
    assert t.heatmap[2, 6, 8] == 1.0
    assert np.argmax(t.heatmap[2]) == 6 * 16 + 8
    assert t.heatmap[[0, 1]].max() == 0.0
    assert 0 < t.heatmap[2, 6, 9] < 1  # Gaussian spreads to neighbours
    assert t.index.tolist() == [6 * 16 + 8]
    assert t.labels.tolist() == [2]
    np.testing.assert_array_equal(t.masks[0], mask.reshape(16, 4, 16, 4).mean(axis=(1, 3)))
    cx, cy = (8 + 0.5) * stride, (6 + 0.5) * stride
    left, top, right, bottom = t.boxes_ltrb[0] * BOX_UNIT
    np.testing.assert_allclose([cx - left, cy - top, cx + right, cy + bottom], box[0], atol=1e-4)


def test_centre_is_mask_centre_of_mass_not_box_centre() -> None:
    size = 64
    mask = _rect(size, 0, 0, 64, 8) | _rect(size, 56, 0, 64, 64)  # an L: mass is low-left of the box centre
    box = np.array([[0, 0, 64, 64]], np.float32)
    t = build_targets(mask[None], box, np.array([0]), num_classes=1, input_size=size)
    ys, xs = np.nonzero(mask)
    cell = divmod(int(t.index[0]), 16)
    assert cell == (int((ys.mean() + 0.5) // 4), int((xs.mean() + 0.5) // 4))
    assert cell != (8, 8)


def test_overlapping_peaks_keep_maximum_and_empty_image() -> None:
    size = 64
    masks = np.stack([_rect(size, 8, 8, 24, 24), _rect(size, 12, 12, 28, 28)])
    boxes = np.array([[8, 8, 24, 24], [12, 12, 28, 28]], np.float32)
    t = build_targets(masks, boxes, np.array([0, 0]), num_classes=1, input_size=size)
    assert (t.heatmap[0].reshape(-1)[t.index] == 1.0).all()
    assert t.heatmap.max() == 1.0
    empty = build_targets(np.zeros((0, size, size), bool), np.zeros((0, 4)), np.zeros(0, int), 2, size)
    assert empty.heatmap.sum() == 0 and len(empty.index) == 0 and empty.masks.shape == (0, 16, 16)


def test_gaussian_radius_grows_with_size() -> None:
    radii = [gaussian_radius(s, s) for s in (2, 8, 32)]
    assert radii[0] < radii[1] < radii[2]
    assert radii[2] < 32


def test_collate_pads_and_marks_valid() -> None:
    size = 32
    one = build_targets(_rect(size, 0, 0, 16, 16)[None], np.array([[0, 0, 16, 16]], np.float32), np.array([1]), 2, size)
    none = build_targets(np.zeros((0, size, size), bool), np.zeros((0, 4)), np.zeros(0, int), 2, size)
    batch = collate_targets([none, one])
    assert batch["heatmap"].shape == (2, 2, 8, 8)
    assert batch["masks"].shape == (2, 1, 8, 8)
    assert batch["valid"].tolist() == [[False], [True]]
    assert batch["labels"][1, 0] == 1
    np.testing.assert_array_equal(batch["masks"][1, 0], one.masks[0])


def test_input_size_must_divide_by_stride() -> None:
    with pytest.raises(ValueError):
        build_targets(np.zeros((0, 30, 30), bool), np.zeros((0, 4)), np.zeros(0, int), 1, 30)


def test_stride_masks_are_the_fraction_of_covered_pixels() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 32, 32)) < 0.4  # partial cells everywhere
    boxes = np.tile(np.array([0, 0, 32, 32], np.float32), (3, 1))
    t = build_targets(masks, boxes, np.array([0, 1, 0]), num_classes=2, input_size=32)
    np.testing.assert_allclose(t.masks, masks.reshape(3, 8, 4, 8, 4).mean(axis=(2, 4)), atol=1e-7)


def test_tight_boxes_at_odd_offsets_give_the_full_size_stride_masks_and_centres() -> None:
    # targets read only the cells under each box: boxes that cut through cells must lose nothing
    rng = np.random.default_rng(1)
    size = 48
    masks = np.zeros((5, size, size), bool)
    places = [(1, 3, 7, 10), (13, 26, 21, 9), (30, 1, 17, 17), (0, 0, 48, 48), (45, 45, 3, 3)]  # y, x, h, w
    for m, (y, x, h, w) in zip(masks, places, strict=True):
        m[y : y + h, x : x + w] = rng.random((h, w)) < 0.6
    t = build_targets(masks, masks_to_boxes(masks), np.zeros(5, int), num_classes=1, input_size=size)
    np.testing.assert_allclose(t.masks, masks.reshape(5, 12, 4, 12, 4).mean(axis=(2, 4)), atol=1e-7)
    for m, index in zip(masks, t.index, strict=True):
        ys, xs = np.nonzero(m)
        assert divmod(int(index), 12) == (int((ys.mean() + 0.5) // 4), int((xs.mean() + 0.5) // 4))


def test_crowd_regions_are_ignored_cells_not_instances() -> None:
    masks = np.zeros((1, 32, 32), bool)
    masks[0, 4:12, 4:12] = True
    crowd = np.zeros((1, 32, 32), bool)
    crowd[0, 17:26, 20:32] = True  # rows 17..25 touch cells 4..6, columns 20..31 cells 5..7
    t = build_targets(masks, np.array([[4, 4, 12, 12]], np.float32), np.array([0]), 1, 32, crowd=crowd)
    expected = np.zeros((8, 8), bool)
    expected[4:7, 5:8] = True
    np.testing.assert_array_equal(t.ignore, expected)
    assert len(t.labels) == 1 and t.heatmap[0][expected].max() == 0.0  # the crowd is no instance
    assert not build_targets(masks, np.array([[4, 4, 12, 12]], np.float32), np.array([0]), 1, 32).ignore.any()
    assert collate_targets([t, t])["ignore"].shape == (2, 8, 8)
