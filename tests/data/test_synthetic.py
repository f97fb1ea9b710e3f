"""Procedural COCO data: valid COCO, determinism, disjoint splits, occlusion, size ranges, throughput."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data import synthetic
from blitzmask_deploy.data.synthetic import CATEGORIES, MAX_INSTANCES, MIN_VISIBLE_PX, generate_dataset, render_image


def test_writes_valid_coco_splits(synth_dataset: Path) -> None:
    for split, n in (("train", 24), ("val", 8)):
        coco = json.loads((synth_dataset / "annotations" / f"instances_{split}.json").read_text())
        assert [img["id"] for img in coco["images"]] == list(range(1, n + 1))
        assert len(coco["categories"]) >= 5
        assert [c["id"] for c in coco["categories"]] == list(range(1, len(coco["categories"]) + 1))
        assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
        sizes = {img["id"]: (img["height"], img["width"]) for img in coco["images"]}
        for img in coco["images"]:
            assert (synth_dataset / "images" / split / img["file_name"]).is_file()
        for ann in coco["annotations"]:
            rle = ann["segmentation"]
            assert isinstance(rle["counts"], str) and rle["size"] == list(sizes[ann["image_id"]])
            mask = mask_utils.decode([rle])[:, :, 0]
            assert ann["area"] == mask.sum() >= MIN_VISIBLE_PX
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            assert ann["bbox"] == [cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1]
            assert ann["iscrowd"] == 0


def test_deterministic_per_seed_and_disjoint_streams() -> None:
    a_img, a_masks, a_cats = render_image(7, "train", 3, 96)
    b_img, b_masks, b_cats = render_image(7, "train", 3, 96)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_masks, b_masks) and a_cats == b_cats
    assert not np.array_equal(a_img, render_image(7, "val", 3, 96)[0])
    assert not np.array_equal(a_img, render_image(8, "train", 3, 96)[0])
    train = {render_image(0, "train", i, 64)[0].tobytes() for i in range(30)}
    val = {render_image(0, "val", i, 64)[0].tobytes() for i in range(30)}
    assert not train & val


def test_output_does_not_depend_on_worker_count(tmp_path: Path) -> None:
    n = synthetic._PARALLEL_MIN_IMAGES
    one = generate_dataset(tmp_path / "one", train=n, val=0, size=48, seed=5, progress=False, workers=1)
    two = generate_dataset(tmp_path / "two", train=n, val=0, size=48, seed=5, progress=False, workers=2)
    ann = "annotations/instances_train.json"
    assert (one / ann).read_text() == (two / ann).read_text()
    for f in sorted((one / "images" / "train").iterdir())[:: n // 8]:
        assert f.read_bytes() == (two / "images" / "train" / f.name).read_bytes()


def test_instances_occlude_and_cover_all_classes_and_sizes() -> None:
    counts, areas, cats = [], [], set()
    for i in range(150):
        image, masks, cat_ids = render_image(1, "train", i, 320)
        assert image.shape == (320, 320, 3) and image.dtype == np.uint8
        assert masks.shape == (len(cat_ids), 320, 320) and masks.dtype == bool
        # visible parts never overlap: each pixel belongs to at most one instance
        assert masks.sum(axis=0).max(initial=0) <= 1
        visible = masks.sum(axis=(1, 2))
        assert (visible >= MIN_VISIBLE_PX).all()
        counts.append(len(cat_ids))
        areas += visible.tolist()
        cats |= set(cat_ids)
    assert min(counts) == 0 and 12 <= max(counts) <= MAX_INSTANCES
    assert cats == {c["id"] for c in CATEGORIES}
    areas = np.array(areas)
    assert (
        (areas < 32**2).sum() > 50 and ((areas >= 32**2) & (areas < 96**2)).sum() > 50 and (areas >= 96**2).sum() > 20
    )


def test_instance_pixels_come_from_a_different_texture_than_background() -> None:
    # the fill is tinted independently of the background: inside/outside means differ for most instances
    differ = total = 0
    for i in range(20):
        image, masks, _ = render_image(2, "val", i, 160)
        for m in masks:
            if m.sum() < 200 or (~m).sum() < 200:
                continue
            total += 1
            differ += np.abs(image[m].mean(0) - image[~m].mean(0)).max() > 10
    assert total > 10 and differ / total > 0.8


def test_bad_arguments_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        generate_dataset(tmp_path, train=-1, val=0, progress=False)
    with pytest.raises(BadInput):
        generate_dataset(tmp_path, train=1, val=0, size=8, progress=False)


@pytest.mark.slow
def test_throughput_at_320_single_process(tmp_path: Path) -> None:
    # CPU time of this one process, so that other jobs sharing the cores do not make the figure flaky;
    # one core sustaining >= 50 images/s means 2 worker processes on 2 cores do at least that
    synthetic.texture_bank(320)
    n = 150
    wall, cpu = time.perf_counter(), time.process_time()
    generate_dataset(tmp_path, train=n, val=0, size=320, seed=0, progress=False, workers=1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"synthetic data at 320x320, one process: {n / cpu:.0f} images per CPU-second, {n / wall:.0f} images/s wall")
    assert n / cpu >= 50
