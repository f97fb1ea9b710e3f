"""Decode (numpy): peaks, top-k, score threshold, mask assembly, box crop, letterbox undo, COCO results."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.masks import masks_to_rle
from blitzmask_deploy.data.letterbox import letterbox_info
from blitzmask_deploy.data.targets import BOX_UNIT
from blitzmask_deploy.inference.decode import Instances, decode, to_coco_results
from blitzmask_deploy.inference.decode_kernels import peak_indices, suppress_other_classes

SIZE, STRIDE = 128, 4
G = SIZE // STRIDE


def _outputs(instances: list[tuple[int, int, int, int, int, float]], num_classes: int = 3) -> dict[str, np.ndarray]:
    """NHWC head outputs for rectangles (y1, x1, y2, x2 in input px, label, score); basis k = instance k's mask."""
    k = max(1, len(instances))
    heat = np.zeros((1, G, G, num_classes), np.float32)
    coef = np.zeros((1, G, G, k), np.float32)
    basis = np.full((1, G, G, k), -10.0, np.float32)
    box = np.zeros((1, G, G, 4), np.float32)
    for i, (y1, x1, y2, x2, label, score) in enumerate(instances):
        cy, cx = (y1 + y2) // 2 // STRIDE, (x1 + x2) // 2 // STRIDE
        heat[0, cy, cx, label] = score
        coef[0, cy, cx, i] = 1.0
        basis[0, y1 // STRIDE : y2 // STRIDE, x1 // STRIDE : x2 // STRIDE, i] = 10.0
        ccx, ccy = (cx + 0.5) * STRIDE, (cy + 0.5) * STRIDE
        box[0, cy, cx] = np.array([ccx - x1, ccy - y1, x2 - ccx, y2 - ccy]) / BOX_UNIT
    return {"heatmap": heat, "coefficients": coef, "spanning_set": basis, "box": box}


def _peaks(heatmap: np.ndarray, threshold: float = -np.inf) -> np.ndarray:
    """Bool map of the cells `peak_indices` returns."""
    peaks = np.zeros(heatmap.size, bool)
    peaks[peak_indices(heatmap, np.float32(threshold))] = True
    return peaks.reshape(heatmap.shape)


def test_peaks_match_brute_force_and_break_ties() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (7, 9, 2)).astype(np.float32)  # few levels: many ties, as in an int8 heatmap
    ref = np.zeros(x.shape, bool)
    for y in range(7):
        for xx in range(9):
            for c in range(2):
                window = x[max(0, y - 1) : y + 2, max(0, xx - 1) : xx + 2, c]
                earlier = [
                    x[y + dy, xx + dx, c]
                    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1))
                    if 0 <= y + dy < 7 and 0 <= xx + dx < 9
                ]
                ref[y, xx, c] = x[y, xx, c] == window.max() and all(x[y, xx, c] > e for e in earlier)
    np.testing.assert_array_equal(_peaks(x), ref)
    np.testing.assert_array_equal(_peaks(x, threshold=2), ref & (x >= 2))
    plateau = np.zeros((6, 6, 1), np.float32)
    plateau[2:4, 2:5] = 0.5  # one object whose quantized peak covers 2×3 cells
    assert np.argwhere(_peaks(plateau, threshold=0.1)[..., 0]).tolist() == [[2, 2]]


@pytest.mark.parametrize("power", [1, 3, 6, 7])
def test_suppress_other_classes_scales_by_the_cells_best_class(power: int) -> None:
    rng = np.random.default_rng(power)
    x = rng.random((9, 11, 4)).astype(np.float32)
    x[0, 0] = 0.0  # a cell where no class fires
    full = x * (x / np.maximum(x.max(-1, keepdims=True), 1e-12)) ** power
    out = suppress_other_classes(x, power, np.float32(0.3))
    above = x >= 0.3
    np.testing.assert_allclose(out[above], full[above], rtol=1e-5)
    np.testing.assert_array_equal(out[~above], x[~above])  # under the floor: copied
    assert (out.max(-1) == x.max(-1)).all()  # the best class of each cell keeps its value
    np.testing.assert_array_equal(_peaks(out, 0.3), _peaks(full.astype(np.float32), 0.3))


def test_weaker_classes_on_the_same_cell_rank_lower() -> None:
    rect = (40, 40, 80, 80)
    outputs = _outputs([(*rect, 0, 0.9), (*rect, 1, 0.6)])  # one object, two classes firing at its centre
    info = letterbox_info(SIZE, SIZE, SIZE)
    np.testing.assert_allclose(decode(outputs, info).scores, [0.9, 0.6 * (0.6 / 0.9) ** 3], rtol=1e-4)
    np.testing.assert_allclose(decode(outputs, info, class_power=0).scores, [0.9, 0.6], rtol=1e-4)
    for power in (-1, 8):
        with pytest.raises(ValueError):
            decode(outputs, info, class_power=power)


def test_decode_recovers_instances_through_letterbox() -> None:
    info = letterbox_info(64, 128, SIZE)  # original 64×128 → scale 1.0, the lower half of the input is padding
    inst = [(8, 8, 40, 48, 2, 0.9), (16, 64, 56, 120, 0, 0.6)]
    out = decode(_outputs(inst), info)
    assert out.masks.shape == (2, 64, 128) and out.masks.dtype == bool
    np.testing.assert_allclose(out.scores, [0.9, 0.6], rtol=1e-4)  # peak × mask score (≈ 1 on logits of ±10)
    assert out.labels.tolist() == [2, 0]
    for j, (y1, x1, y2, x2, _, _) in enumerate(inst):
        gt = np.zeros((64, 128), bool)
        gt[y1:y2, x1:x2] = True
        iou = (out.masks[j] & gt).sum() / (out.masks[j] | gt).sum()
        assert iou > 0.9
        np.testing.assert_allclose(out.boxes[j], [x1, y1, x2, y2], atol=1e-3)


def test_decode_scales_back_to_larger_originals() -> None:
    info = letterbox_info(256, 192, SIZE)  # scale 0.5
    out = decode(_outputs([(16, 16, 80, 64, 1, 0.8)]), info)
    assert out.masks.shape == (1, 256, 192)
    np.testing.assert_allclose(out.boxes[0], [32, 32, 128, 160], atol=1e-3)
    ys, xs = np.nonzero(out.masks[0])
    assert abs(ys.min() - 32) <= 2 and abs(ys.max() - 159) <= 2 and abs(xs.min() - 32) <= 2 and abs(xs.max() - 127) <= 2


def test_box_crops_the_mask_and_no_box_head_uses_mask_extent() -> None:
    outputs = _outputs([(40, 40, 80, 80, 0, 0.9)])
    outputs["spanning_set"][0, 2:30, 2:30, 0] = 10.0  # the basis leaks far outside the box
    info = letterbox_info(SIZE, SIZE, SIZE)
    cropped = decode(outputs, info)
    assert cropped.masks[0].sum() == 40 * 40
    free = decode({k: v for k, v in outputs.items() if k != "box"}, info)
    assert free.masks[0].sum() > 100 * 100
    np.testing.assert_allclose(free.boxes[0], [8, 8, 120, 120], atol=1)


def test_negative_box_distances_from_a_device_that_computes_wrong_are_read_as_zero() -> None:
    """The box head ends in a ReLU; a delegate's outputs can still hold negative distances (noise, a bad kernel):
    a side with a negative distance ends at the centre, never beyond it (a box of negative size, which COCO
    evaluation refuses)."""
    outputs = _outputs([(40, 40, 80, 80, 0, 0.9)])
    outputs["box"][0, 15, 15] = [-3.0, 2.0, 1.0, 0.5]  # left, top, right, bottom in BOX_UNITs from the centre
    (box,) = decode(outputs, letterbox_info(SIZE, SIZE, SIZE)).boxes
    center = (15 + 0.5) * STRIDE
    np.testing.assert_allclose(box, [center, center - 2 * BOX_UNIT, center + BOX_UNIT, center + 0.5 * BOX_UNIT])


def test_peaks_threshold_topk_and_optional_batch_dim() -> None:
    outputs = _outputs([(8, 8, 24, 24, 0, 0.9), (64, 64, 96, 96, 1, 0.5), (100, 8, 120, 40, 2, 0.04)])
    cy, cx = 16 // STRIDE, 16 // STRIDE
    outputs["heatmap"][0, cy, cx + 1, 0] = 0.8  # a neighbour of a stronger peak: suppressed by the 3×3 max-pool
    info = letterbox_info(SIZE, SIZE, SIZE)
    out = decode(outputs, info)
    np.testing.assert_allclose(out.scores, [0.9, 0.5], rtol=1e-4)  # 0.8 suppressed, 0.04 under 0.05
    assert len(decode(outputs, info, top_k=1)) == 1
    assert len(decode(outputs, info, score_threshold=0.6)) == 1
    assert len(decode(outputs, info, score_threshold=0.95)) == 0
    unbatched = decode({k: v[0] for k, v in outputs.items()}, info)
    np.testing.assert_array_equal(unbatched.masks, out.masks)
    strided = {k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1) for k, v in outputs.items()}
    np.testing.assert_array_equal(decode(strided, info).masks, out.masks)  # NCHW memory seen as NHWC
    empty = decode(outputs, info, score_threshold=0.99)
    assert empty.masks.shape == (0, SIZE, SIZE) and empty.boxes.shape == (0, 4)


def test_scores_are_the_peak_times_the_mean_probability_of_the_mask() -> None:
    outputs = _outputs([(8, 8, 40, 48, 0, 0.9), (64, 64, 96, 96, 1, 0.8), (100, 8, 120, 40, 2, 0.7)])
    basis = outputs["spanning_set"][0]
    basis[2:10, 2:12, 0] = 1.0  # instance 0's mask cells: p = sigmoid(1) on rows 2–5, 0.9 on rows 6–9
    basis[6:10, 2:12, 0] = np.log(9.0)
    basis[..., 2] = -1.0  # instance 2: no cell above the threshold (logit(0.4) ≈ -0.41), an empty mask
    info = letterbox_info(SIZE, SIZE, SIZE)
    out = decode(outputs, info)
    expected = 0.9 * (1 / (1 + np.exp(-1.0)) + 0.9) / 2  # the -10 cells around the box are not on the mask
    np.testing.assert_allclose(out.scores, [0.8, expected], rtol=1e-4)  # re-sorted; instance 2 scored 0: dropped
    np.testing.assert_array_equal(out.labels, [1, 0])
    for mask, (y1, x1, y2, x2) in zip(out.masks, [(64, 64, 96, 96), (8, 8, 40, 48)], strict=True):
        assert mask[y1:y2, x1:x2].sum() == mask.sum() > 0.8 * (y2 - y1) * (x2 - x1)  # crops moved along
    assert decode(outputs, info, mask_threshold=0.95).labels.tolist() == [1]  # no cell of instance 0 above it
    assert decode(outputs, info, score_threshold=0.75).labels.tolist() == [1]  # 0.9 × its mask score < 0.75


def test_to_coco_results_round_trips_masks() -> None:
    info = letterbox_info(SIZE, SIZE, SIZE)
    out = decode(_outputs([(8, 8, 40, 48, 2, 0.9), (64, 64, 96, 96, 0, 0.6)]), info)
    results = to_coco_results(out, image_id=7, cat_index_to_id=[10, 20, 30])
    assert [r["category_id"] for r in results] == [30, 10]
    assert all(r["image_id"] == 7 for r in results)
    for r, m in zip(results, out.masks, strict=True):
        assert isinstance(r["segmentation"]["counts"], str)
        rle = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), m)
    assert results[0]["bbox"] == [8.0, 8.0, 40.0, 32.0]
    assert to_coco_results(decode(_outputs([]), info), 1, [1]) == []


def test_resampling_agrees_with_unletterbox_mask() -> None:
    from blitzmask_deploy.data.letterbox import unletterbox_mask

    yy, xx = np.mgrid[0:G, 0:G]
    outputs = _outputs([(8, 8, 60, 100, 0, 0.9)])
    outputs["spanning_set"][0, :, :, 0] = 4 * (np.sin(xx / 3.0) + np.cos(yy / 2.0) - 0.3)  # smooth blobs
    info = letterbox_info(90, 150, SIZE)
    ours = decode({k: v for k, v in outputs.items() if k != "box"}, info, mask_threshold=0.5).masks[0]
    soft = 1 / (1 + np.exp(-outputs["spanning_set"][0, :, :, 0]))
    ref = unletterbox_mask(soft, info) > 0.5
    assert (ours == ref).mean() > 0.98


@pytest.mark.parametrize("orig", [(80, 96), (160, 192), (100, 150)])  # 4 or 8 px per cell, and a fractional scale
def test_crops_and_mask_scores_equal_the_full_image_resample_inside_their_windows(orig: tuple[int, int]) -> None:
    from blitzmask_deploy.inference.decode import grid_taps
    from blitzmask_deploy.inference.decode_kernels import mask_scores, paste_crops

    rng = np.random.default_rng(sum(orig))
    info = letterbox_info(*orig, 96)
    g_h, g_w, k, n = 24, 24, 3, 12
    basis = rng.standard_normal((g_h, g_w, k)).astype(np.float32)
    coef = rng.standard_normal((n, k)).astype(np.float32)
    x1, y1 = rng.integers(0, info.orig_w, n), rng.integers(0, info.orig_h, n)
    x2 = np.minimum(x1 + rng.integers(0, info.orig_w, n), info.orig_w)  # sizes 0 (empty) to the whole image
    y2 = np.minimum(y1 + rng.integers(0, info.orig_h, n), info.orig_h)
    x1[0], y1[0], x2[0], y2[0] = 0, 0, info.orig_w, info.orig_h
    windows = np.stack([x1, y1, x2, y2], axis=1)
    taps = grid_taps(info, g_h, g_w)
    scores, logits, starts = mask_scores(coef, basis, windows, *taps, np.float32(0.0))
    pixels = paste_crops(logits, starts, windows, *taps, np.float32(0.0))
    crops = _instances(pixels, windows, orig).crops
    (r0, r1, rw), (c0, c1, cw) = taps
    for i in range(n):
        grid = basis @ coef[i]
        if x2[i] > x1[i] and y2[i] > y1[i]:  # the score: mean sigmoid of the cells the window reads, where > 0
            cells = grid[r0[y1[i]] : r1[y2[i] - 1] + 1, c0[x1[i]] : c1[x2[i] - 1] + 1]
            on = cells[cells > 0]
            np.testing.assert_allclose(scores[i], np.mean(1 / (1 + np.exp(-on))) if on.size else 0.0, rtol=1e-5)
        else:
            assert scores[i] == 0.0
        rows = grid[r0] * (1 - rw)[:, None] + grid[r1] * rw[:, None]
        full = rows[:, c0] * (1 - cw) + rows[:, c1] * cw  # the whole image, resampled tap by tap
        ref = full[y1[i] : y2[i], x1[i] : x2[i]]
        assert crops[i].shape == ref.shape and crops[i].dtype == bool
        clear = np.abs(ref) > 1e-4  # pixels at exactly the threshold may round either way
        np.testing.assert_array_equal(crops[i][clear], ref[clear] > 0)


def _instances(crop_pixels: np.ndarray, windows: np.ndarray, image_size: tuple[int, int]) -> Instances:
    n = len(windows)
    boxes, scores = np.zeros((n, 4), np.float32), np.ones(n, np.float32)
    return Instances(crop_pixels, windows, image_size, boxes, scores, labels=np.zeros(n, np.int64))


def test_rle_from_crops_equals_rle_of_full_masks() -> None:
    rng = np.random.default_rng(0)
    h, w = 37, 53
    windows, crops = [], []
    full = np.zeros((40, h, w), bool)
    for i in range(40):
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x2, y2 = int(rng.integers(x1, w + 1)), int(rng.integers(y1, h + 1))  # empty windows included
        if i % 5 == 0:
            x2, y2 = w, h  # windows that reach the last pixel, some of them full
        crop = rng.random((y2 - y1, x2 - x1)) < (1.0 if i % 10 == 0 else 0.5)
        if i == 1:
            x1, y1, x2, y2 = 0, 0, w, h
            crop = np.indices((h, w)).sum(0) % 2 == 1  # a run per pixel: the most runs a mask can have
        windows.append((x1, y1, x2, y2))
        crops.append(crop.ravel())
        full[i, y1:y2, x1:x2] = crop
    inst = _instances(np.concatenate(crops), np.array(windows), (h, w))
    np.testing.assert_array_equal(inst.masks, full)
    assert inst.rles() == masks_to_rle(full)
    assert _instances(np.zeros(0, bool), np.zeros((0, 4), np.int64), (h, w)).rles() == []


def test_instances_keep_crops_and_build_full_masks_on_demand() -> None:
    info = letterbox_info(SIZE, SIZE, SIZE)
    out = decode(_outputs([(8, 8, 40, 48, 2, 0.9), (64, 64, 96, 96, 0, 0.6)]), info)
    assert out.windows.tolist() == [[8, 8, 48, 40], [64, 64, 96, 96]]
    assert [c.shape for c in out.crops] == [(32, 40), (32, 32)]
    masks = out.masks
    assert masks.shape == (2, SIZE, SIZE) and out.crops[0].mean() > 0.95
    for mask, crop, (x1, y1, x2, y2) in zip(masks, out.crops, out.windows, strict=True):
        np.testing.assert_array_equal(mask[y1:y2, x1:x2], crop)
        assert mask.sum() == crop.sum()  # nothing outside the window
