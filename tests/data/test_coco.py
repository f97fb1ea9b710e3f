"""COCO loader: synthetic splits, every segmentation encoding, crowd flags, malformed input → BadInput."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import masks_to_boxes, rle_strings_coverage
from blitzmask_deploy.data.coco import CocoDataset

H, W = 20, 30


def test_loads_synthetic_split(synth_dataset: Path) -> None:
    ds = CocoDataset.from_split(synth_dataset, "val")
    assert len(ds) == 8 and ds.image_ids == list(range(1, 9))
    assert ds.num_classes >= 5 and ds.cat_index_to_id == list(range(1, ds.num_classes + 1))
    assert ds.ann_path == synth_dataset / "annotations" / "instances_val.json"
    assert ds.coco["categories"] == ds.categories
    n_instances = 0
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8
        assert s.image_id == ds.image_ids[i] and s.file.is_file()
        gt = s.gt
        assert gt.masks.dtype == bool and gt.masks.shape == (len(gt), 128, 128)
        assert gt.boxes.dtype == np.float32 and gt.labels.dtype == np.int64 and gt.iscrowd.dtype == bool
        assert ((gt.labels >= 0) & (gt.labels < ds.num_classes)).all() and not gt.iscrowd.any()
        np.testing.assert_array_equal(gt.boxes, masks_to_boxes(gt.masks))
        n_instances += len(gt)
    assert n_instances == len(ds.coco["annotations"])


def _square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.T.ravel().astype(np.int8)  # column-major, as COCO stores it
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], edges])).tolist()
    return {"size": [H, W], "counts": counts}


def _write(tmp_path: Path, coco: dict, *, image: bool = True) -> tuple[Path, Path]:
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    if image:
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(img_dir / "a.png")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(coco))
    return ann, img_dir


def _coco(annotations: list[dict]) -> dict:
    return {
        "images": [{"id": 5, "file_name": "a.png", "height": H, "width": W}],
        "annotations": annotations,
        "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
    }


def test_polygon_rle_and_crowd_annotations(tmp_path: Path) -> None:
    compressed = mask_utils.encode(np.asfortranarray(_square(10, 2, 15, 9).astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()
    anns = [
        {"id": 1, "image_id": 5, "category_id": 3, "segmentation": [[2, 3, 8, 3, 8, 10, 2, 10]], "iscrowd": 0},
        {"id": 2, "image_id": 5, "category_id": 7, "segmentation": _uncompressed(_square(20, 0, 30, 5)), "iscrowd": 1},
        {"id": 3, "image_id": 5, "category_id": 7, "segmentation": compressed, "bbox": [10, 2, 5, 7]},
    ]
    ds = CocoDataset.from_files(*_write(tmp_path, _coco(anns)))
    assert ds.cat_index_to_id == [3, 7] and ds.image_ids == [5]
    gt = ds[0].gt
    np.testing.assert_array_equal(gt.labels, [0, 1, 1])
    np.testing.assert_array_equal(gt.iscrowd, [False, True, False])
    np.testing.assert_array_equal(gt.masks[1], _square(20, 0, 30, 5))
    np.testing.assert_array_equal(gt.masks[2], _square(10, 2, 15, 9))
    # polygon rasterised by pycocotools: covers the interior of the rectangle x 2..8, y 3..10
    assert gt.masks[0][4:10, 3:8].all() and not gt.masks[0][:, 10:].any() and not gt.masks[0][:2].any()
    np.testing.assert_array_equal(gt.boxes[2], [10, 2, 15, 9])
    np.testing.assert_array_equal(gt.boxes[1], masks_to_boxes(gt.masks[1:2])[0])


def test_image_without_annotations_is_empty(tmp_path: Path) -> None:
    gt = CocoDataset.from_files(*_write(tmp_path, _coco([])))[0].gt
    assert len(gt) == 0 and gt.masks.shape == (0, H, W) and gt.boxes.shape == (0, 4)


def _ann(**kw) -> dict:
    base = {"id": 1, "image_id": 5, "category_id": 3, "segmentation": [[2, 3, 8, 3, 8, 10]], "iscrowd": 0}
    return {**base, **kw}


@pytest.mark.parametrize(
    ("coco", "expected"),
    [
        ({"images": [], "categories": []}, "annotations"),
        (_coco([{"id": 1, "image_id": 5, "category_id": 3}]), "missing segmentation"),
        (_coco([_ann(category_id=99)]), "unknown category id 99"),
        (_coco([_ann(image_id=6)]), "unknown image id 6"),
        (_coco([_ann(segmentation=[[2, 3, 40, 3, 8, 10]])]), "outside"),
        (_coco([_ann(segmentation={"size": [H + 5, W], "counts": "PPYo1"})]), "does not match the image size"),
        (_coco([_ann(segmentation={"size": [H, W], "counts": [10, 5]})]), "summing"),
        (_coco([_ann(segmentation={"size": [H, W], "counts": "0d1"})]), "corrupt"),
        (_coco([_ann(bbox=[25, 0, 10, 4])]), "outside"),
        (_coco([_ann(bbox=[1, 2])]), "bbox"),
    ],
    ids=[
        "missing-key",
        "ann-missing-key",
        "unknown-category",
        "unknown-image",
        "polygon-outside",
        "rle-size",
        "rle-counts",
        "rle-corrupt",
        "bbox-outside",
        "bbox-shape",
    ],
)
def test_malformed_annotations_are_one_line_bad_input(tmp_path: Path, coco: dict, expected: str) -> None:
    ann, img_dir = _write(tmp_path, coco)
    with pytest.raises(BadInput) as err:
        CocoDataset.from_files(ann, img_dir)
    message = str(err.value)
    assert expected in message and str(ann) in message and "\n" not in message


def test_bad_json_and_missing_files(tmp_path: Path) -> None:
    ann, img_dir = _write(tmp_path, _coco([]), image=False)
    with pytest.raises(BadInput, match="image file not found"):
        CocoDataset.from_files(ann, img_dir)
    ann.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        CocoDataset.from_files(ann, img_dir)
    with pytest.raises(BadInput, match="annotation file not found"):
        CocoDataset.from_split(tmp_path, "val")
    with pytest.raises(BadInput, match="unknown split"):
        CocoDataset.from_split(tmp_path, "test")


def test_image_size_mismatch_and_unreadable_image(tmp_path: Path) -> None:
    ann, img_dir = _write(tmp_path, _coco([]))
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(img_dir / "a.png")
    with pytest.raises(BadInput, match="says 30x20"):
        CocoDataset.from_files(ann, img_dir)[0]
    (img_dir / "a.png").write_bytes(b"not a png")
    with pytest.raises(BadInput, match="not a readable image"):
        CocoDataset.from_files(ann, img_dir)[0]


def test_rle_string_decoder_agrees_with_pycocotools() -> None:
    rng = np.random.default_rng(0)
    strings, pixels = [], []
    for i in range(60):
        h, w = rng.integers(1, 120, 2)
        mask = rng.random((h, w)) < rng.random()
        mask[: h // 2] = i % 3 == 0  # long runs as well as short ones
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert mask_utils.area(rle) == mask.sum()
        strings.append(rle["counts"].decode())
        pixels.append(h * w)
    truncated = strings[5] + "o"  # 'o' = 63: "more groups follow", then the string ends
    out_of_range = strings[6][:-1] + "~"
    coverage = rle_strings_coverage([*strings, truncated, out_of_range, ""])
    np.testing.assert_array_equal(coverage, [*pixels, -1, -1, 0])


@pytest.mark.parametrize("name", ["../a.png", "/etc/passwd", "sub/../../a.png", "", 7])
def test_file_names_outside_the_image_folder_are_refused(tmp_path: Path, name: object) -> None:
    coco = _coco([])
    coco["images"][0]["file_name"] = name
    ann, img_dir = _write(tmp_path, coco)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(BadInput, match="file_name") as err:
        CocoDataset.from_files(ann, img_dir)
    assert "\n" not in str(err.value)


def test_a_symlink_out_of_the_image_folder_is_refused(tmp_path: Path) -> None:
    ann, img_dir = _write(tmp_path, _coco([]))
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(outside)
    (img_dir / "a.png").unlink(missing_ok=True)
    (img_dir / "a.png").symlink_to(outside)
    with pytest.raises(BadInput, match="leads outside"):
        CocoDataset.from_files(ann, img_dir)
