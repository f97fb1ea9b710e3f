"""`blitzmask data import`: the same instances written as labelme, VOC and YOLO import to the same masks; labelme
groups, shape types and embedded images; VOC boundaries and majority classes; YOLO layouts; deterministic splits
and bytes; refusals with one line and exit code 2."""

from __future__ import annotations

import base64
import filecmp
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.coco import CocoDataset
from blitzmask_deploy.data.importers import import_dataset
from blitzmask_deploy.data.importers.split import split_by_name
from blitzmask_deploy.data.importers.voc import VOC_CLASSES
from blitzmask_deploy.data.synthetic import CATEGORIES, generate_dataset
from tests.conftest import run_cli
from tests.support.formats import (
    Sample,
    labelme_shape,
    samples_from_coco,
    write_labelme,
    write_labelme_file,
    write_palette_png,
    write_voc,
    write_yolo,
)

NAMES = {c["id"]: c["name"] for c in CATEGORIES}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    """A 6 + 3 image procedural set at 96x96, reduced to the instances every format can hold."""
    root = tmp_path_factory.mktemp("coco")
    generate_dataset(root, train=6, val=3, size=96, seed=1, progress=False)
    samples = samples_from_coco(root)
    assert sum(len(s.masks) for s in samples) >= 25
    return samples


@pytest.fixture(scope="module")
def sources(samples: list[Sample], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    return {
        "labelme": write_labelme(samples, base / "labelme", NAMES),
        "voc": write_voc(samples, base / "voc"),
        "yolo": write_yolo(samples, base / "yolo", NAMES),
    }


def _imported(out: Path) -> dict[str, tuple[str, dict, list[dict], dict[int, str]]]:
    """file_name -> (split, image record, annotations, category names by id) of an imported dataset."""
    found = {}
    for split in ("train", "val"):
        CocoDataset.from_split(out, split)  # the project's own reader accepts it
        coco = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        for img in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
            found[img["file_name"]] = (split, img, anns, names)
    return found


# category id of a source instance in each format: (expected id or None, expected name)
_EXPECTED = {
    "labelme": lambda cid: (None, NAMES[cid]),  # ids: label names in order, from 1
    "voc": lambda cid: (cid, VOC_CLASSES[cid - 1]),  # the VOC class index
    "yolo": lambda cid: (cid - 1, NAMES[cid]),  # the YOLO class index
}


@pytest.mark.parametrize("fmt", ["labelme", "voc", "yolo"])
def test_each_format_imports_the_source_instances(fmt: str, samples, sources, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = import_dataset(fmt, sources[fmt], out, progress=False)
    found = _imported(out)
    assert sorted(found) == sorted(s.name for s in samples)
    assert summary["split_from"] == ("val-fraction" if fmt == "labelme" else "source")
    n = 0
    for s in samples:
        split, img, anns, names = found[s.name]
        assert filecmp.cmp(out / "images" / split / s.name, s.image, shallow=False)  # copied, not re-encoded
        assert (img["height"], img["width"]) == s.masks.shape[1:]
        if fmt != "labelme":
            assert split == s.split
        assert len(anns) == len(s.masks)
        for ann, mask, cid in zip(anns, s.masks, s.category_ids, strict=True):
            got = mask_utils.decode(ann["segmentation"]).astype(bool)
            iou = (got & mask).sum() / (got | mask).sum()
            assert iou == 1.0 if fmt == "voc" else iou >= 0.99, (s.name, iou)
            expected_id, expected_name = _EXPECTED[fmt](cid)
            assert names[ann["category_id"]] == expected_name
            assert expected_id is None or ann["category_id"] == expected_id
            assert ann["area"] == got.sum() and ann["iscrowd"] == 0
            assert ann["bbox"] == mask_utils.toBbox(ann["segmentation"]).tolist()
            assert isinstance(ann["segmentation"]["counts"], str)
            n += 1
    assert n == sum(s["instances"] for s in summary["splits"].values()) == sum(len(s.masks) for s in samples)
    assert [c["name"] for c in summary["categories"]] == [names[c["id"]] for c in summary["categories"]]


def test_labelme_groups_shape_types_and_skipped_shapes(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    src.mkdir()
    Image.new("RGB", (40, 30), (90, 90, 90)).save(src / "a.png")
    shapes = [
        labelme_shape("cat", [[2, 2], [10, 8]], "rectangle", group_id=1),
        labelme_shape("dog", [[20, 2], [30, 10]], "rectangle", group_id=1),  # same group, other label: apart
        labelme_shape("cat", [[12, 20], [2, 12]], "rectangle", group_id=1),  # joins the first cat
        labelme_shape("cat", [[30, 20], [38, 20], [38, 28], [30, 28]]),  # polygon, no group: alone
        labelme_shape("cat", [[14, 14], [18, 14], [18, 18], [14, 18]]),  # polygon, no group: alone
        labelme_shape("dog", [[30, 15], [33, 15]], "circle"),
        labelme_shape("dog", [[1, 1], [5, 5]], "line"),
        labelme_shape("dog", [[1, 1]], "point"),
        labelme_shape("dog", [[1, 1]], "point"),
    ]
    write_labelme_file(src / "a.json", "a.png", 30, 40, shapes)
    r = run_cli("data", "import", "--from", "labelme", src, tmp_path / "out", "--val-fraction", "0", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["skipped"] == {
        "labelme 'line' shapes (only polygon, rectangle, circle, mask shapes have an area)": 1,
        "labelme 'point' shapes (only polygon, rectangle, circle, mask shapes have an area)": 2,
    }
    skipped_lines = [line for line in r.stderr.splitlines() if line.startswith("skipped")]
    assert skipped_lines == [f"skipped {n} {what}" for what, n in summary["skipped"].items()]
    coco = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert coco["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    masks = [mask_utils.decode(a["segmentation"]).astype(bool) for a in coco["annotations"]]
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2, 1, 1, 2]

    def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        m = np.zeros((30, 40), bool)
        m[y0:y1, x0:x1] = True
        return m

    np.testing.assert_array_equal(masks[0], box(2, 2, 10, 8) | box(2, 12, 12, 20))  # one instance, two rectangles
    np.testing.assert_array_equal(masks[1], box(20, 2, 30, 10))
    np.testing.assert_array_equal(masks[2], box(30, 20, 38, 28))
    np.testing.assert_array_equal(masks[3], box(14, 14, 18, 18))
    assert abs(masks[4].sum() - np.pi * 9) < 6 and masks[4][15, 30]  # circle of radius 3 around (30, 15)


def _jpeg_with_orientation(path: Path, width: int, height: int, orientation: int) -> None:
    img = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())


def test_labelme_embedded_image_and_exif_orientation(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    src.mkdir()
    _jpeg_with_orientation(src / "rot.jpg", 40, 20, 6)  # stored 40x20, shown (and labelled) 20x40
    rect = [labelme_shape("a", [[2, 30], [10, 38]], "rectangle")]
    write_labelme_file(src / "rot.json", "rot.jpg", 40, 20, rect)
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 10)).save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode()
    mask_png = io.BytesIO()
    Image.fromarray(np.array([[1, 1, 0], [1, 1, 1]], np.uint8) * 255).save(mask_png, format="PNG")
    mask_shape = labelme_shape("a", [[4, 5], [6, 6]], "mask") | {"mask": base64.b64encode(mask_png.getvalue()).decode()}
    write_labelme_file(src / "emb.json", "gone/emb.png", 12, 16, [mask_shape], imageData=data)
    summary = import_dataset("labelme", src, tmp_path / "out", val_fraction=0, progress=False)
    assert summary["splits"]["train"]["images"] == 2
    found = _imported(tmp_path / "out")
    _, rot, rot_anns, _ = found["rot.jpg"]
    assert (rot["width"], rot["height"]) == (20, 40)  # the EXIF-rotated size
    assert filecmp.cmp(tmp_path / "out" / "images" / "train" / "rot.jpg", src / "rot.jpg", shallow=False)
    assert mask_utils.toBbox(rot_anns[0]["segmentation"]).tolist() == [2, 30, 8, 8]
    _, emb, emb_anns, _ = found["emb.png"]  # the embedded bytes, named after imagePath
    assert (tmp_path / "out" / "images" / "train" / "emb.png").read_bytes() == buf.getvalue()
    assert (emb["width"], emb["height"]) == (16, 12)
    got = mask_utils.decode(emb_anns[0]["segmentation"]).astype(bool)
    assert got.sum() == 5 and got[5, 4] and got[6, 6] and not got[5, 6]

    write_labelme_file(src / "rot.json", "rot.jpg", 20, 40, rect)  # the size before rotation: refused
    with pytest.raises(BadInput, match=r"rot.json: .*40x20 but the image \(EXIF orientation applied\) is 20x40"):
        import_dataset("labelme", src, tmp_path / "out2", progress=False)


def test_voc_boundary_ignored_and_majority_class(samples, tmp_path: Path) -> None:
    src = write_voc(samples, tmp_path / "voc", boundary=True)
    import_dataset("voc", src, tmp_path / "out", progress=False)
    found = _imported(tmp_path / "out")
    for s in samples:
        expected = [ndimage.binary_erosion(m) for m in s.masks]  # the outermost pixels became 255
        expected = [m for m in expected if m.any()]
        anns = found[s.name][2]
        assert len(anns) == len(expected)
        for ann, mask in zip(anns, expected, strict=True):
            np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), mask)

    one = tmp_path / "one"
    write_voc(samples[:1], one)
    obj, cls = np.zeros((96, 96), np.uint8), np.zeros((96, 96), np.uint8)
    obj[10:20, 10:20], cls[10:20, 10:20] = 1, 15  # person ...
    cls[10:14, 10:20] = 9  # ... with 40 % chair pixels ...
    cls[10:20, 10] = 255  # ... and void pixels, not counted
    obj[50:60, 50:60], cls[50:60, 50:60] = 2, 5
    stem = Path(samples[0].name).stem
    write_palette_png(obj, one / "SegmentationObject" / f"{stem}.png")
    write_palette_png(cls, one / "SegmentationClass" / f"{stem}.png")
    shutil.rmtree(one / "ImageSets")  # no lists: --val-fraction (0: all train)
    summary = import_dataset("voc", one, tmp_path / "out1", val_fraction=0, progress=False)
    assert summary["categories"] == [
        {"id": 5, "name": "bottle", "instances": 1},
        {"id": 15, "name": "person", "instances": 1},
    ]  # gapped ids: the VOC class indices that occur
    assert summary["split_from"] == "val-fraction" and summary["splits"]["train"]["images"] == 1


def test_yolo_flat_roboflow_and_cvat_layouts(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    (flat / "images").mkdir(parents=True)
    (flat / "labels").mkdir()
    for stem in ("a", "b", "c", "d"):
        Image.new("RGB", (40, 30), (50, 60, 70)).save(flat / "images" / f"{stem}.jpg")
    # a rectangle x 10..30, y 6..24 of a 40x30 image, normalised by width and height
    (flat / "labels" / "a.txt").write_text("7 0.25 0.2 0.75 0.2 0.75 0.8 0.25 0.8\n\n")
    (flat / "data.yaml").write_text(yaml.safe_dump({"names": {3: "cup", 7: "mug"}}))
    summary = import_dataset("yolo", flat, tmp_path / "out", val_fraction=0.5, progress=False)
    assert summary["split_from"] == "val-fraction"
    assert summary["categories"] == [{"id": 7, "name": "mug", "instances": 1}]
    split, _, anns, _ = _imported(tmp_path / "out")["a.jpg"]
    expected = np.zeros((30, 40), bool)
    expected[6:24, 10:30] = True
    np.testing.assert_array_equal(mask_utils.decode(anns[0]["segmentation"]).astype(bool), expected)
    splits = split_by_name(["a.jpg", "b.jpg", "c.jpg", "d.jpg"], 0.5)
    assert split == splits["a.jpg"] and {v["images"] for v in summary["splits"].values()} <= {1, 2, 3}

    robo = tmp_path / "robo"  # Roboflow's export: train/images, valid/images, paths written as ../train/images
    for split in ("train", "valid"):
        shutil.copytree(flat / "images", robo / split / "images")
        shutil.copytree(flat / "labels", robo / split / "labels")
    config = {"train": "../train/images", "val": "../valid/images", "nc": 8, "names": [f"c{i}" for i in range(8)]}
    (robo / "data.yaml").write_text(yaml.safe_dump(config))
    summary = import_dataset("yolo", robo, tmp_path / "out2", progress=False)
    assert summary["split_from"] == "source"
    assert {s: v["images"] for s, v in summary["splits"].items()} == {"train": 4, "val": 4}

    cvat = tmp_path / "cvat"  # CVAT's export: one subset listed in train.txt, relative to the dataset root
    shutil.copytree(flat / "images", cvat / "images" / "train")
    shutil.copytree(flat / "labels", cvat / "labels" / "train")
    (cvat / "train.txt").write_text("".join(f"images/train/{s}.jpg\n" for s in ("a", "b", "c", "d")))
    (cvat / "data.yaml").write_text("path: ./\ntrain: train.txt\nnames:\n  0: cup\n  7: mug\n")
    summary = import_dataset("yolo", cvat, tmp_path / "out3", val_fraction=0.5, progress=False)
    assert summary["split_from"] == "val-fraction" and summary["categories"][0]["instances"] == 1
    assert sum(v["images"] for v in summary["splits"].values()) == 4


def test_val_fraction_split_is_deterministic_and_stable() -> None:
    names = [f"img_{i:04d}.jpg" for i in range(400)]
    splits = split_by_name(names, 0.2)
    assert splits == split_by_name(list(reversed(names)), 0.2)
    assert 0.15 < sum(v == "val" for v in splits.values()) / len(names) < 0.25
    more = split_by_name([*names, *(f"new_{i}.jpg" for i in range(100))], 0.2)
    assert all(more[n] == splits[n] for n in names)  # adding images moves none of the others
    assert set(split_by_name(names, 0).values()) == {"train"}
    assert set(split_by_name(names[:2], 0.01).values()) == {"train", "val"}  # tiny sets: one image per split


def test_reimport_writes_identical_bytes(sources, tmp_path: Path) -> None:
    for fmt in ("labelme", "yolo"):
        a, b = tmp_path / f"{fmt}_a", tmp_path / f"{fmt}_b"
        import_dataset(fmt, sources[fmt], a, progress=False)
        import_dataset(fmt, sources[fmt], b, progress=False)
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
        before = (a / "annotations" / "instances_train.json").read_bytes()
        import_dataset(fmt, sources[fmt], a, overwrite=True, progress=False)
        assert (a / "annotations" / "instances_train.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labelme_a", "labelme_b", "yolo_a", "yolo_b"]  # no leftovers


def _one_line_error(r, *words: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_non_empty_out_is_refused_unless_overwrite(sources, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_cli("data", "import", "--from", "voc", sources["voc"], out)
    _one_line_error(r, str(out), "not empty", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"
    r = run_cli("data", "import", "--from", "voc", sources["voc"], out, "--overwrite", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["splits"]["val"]["images"] == 3 and "import voc" not in r.stderr  # no bar: no tty
    assert not (out / "keep.txt").exists() and (out / "annotations" / "instances_val.json").is_file()
    _one_line_error(run_cli("data", "import", "--from", "voc", sources["voc"], sources["voc"] / "coco"), "inside")


def _broken_sources(base: Path, sources: dict[str, Path]) -> dict[str, tuple[str, Path, tuple[str, ...]]]:
    """name -> (format, source folder, words the error line must contain), each source broken in one place."""
    cases = {}

    def copy(fmt: str, name: str) -> Path:
        return shutil.copytree(sources[fmt], base / name)

    lm = copy("labelme", "lm_not_labelme")
    (lm / "zz.json").write_text(json.dumps({"images": []}))
    cases["not-labelme"] = ("labelme", lm, ("zz.json", "not a labelme file"))
    lm = copy("labelme", "lm_missing_image")
    victim = sorted(lm.glob("*.jpg"))[-1]
    victim.unlink()
    cases["labelme-image-missing"] = ("labelme", lm, (victim.stem + ".json", "image file not found"))
    voc = copy("voc", "voc_no_objects")
    shutil.rmtree(voc / "SegmentationObject")
    cases["voc-tree"] = ("voc", voc, ("not a Pascal VOC tree", "SegmentationObject"))
    yolo = copy("yolo", "yolo_bad_class")
    label = sorted((yolo / "labels" / "val").glob("*.txt"))[-1]
    label.write_text(label.read_text() + "9 0.1 0.1 0.2 0.1 0.2 0.2\n")
    cases["yolo-class"] = ("yolo", yolo, (label.name, "class 9 is not in names"))
    yolo = copy("yolo", "yolo_pixels")
    label = sorted((yolo / "labels" / "train").glob("*.txt"))[0]
    label.write_text("0 10 10 40 10 40 40\n")
    cases["yolo-not-normalised"] = ("yolo", yolo, (f"{label.name}:1", "normalised"))
    return cases


def test_bad_input_exits_2_with_one_line_and_writes_nothing(sources, tmp_path: Path) -> None:
    for name, (fmt, src, words) in _broken_sources(tmp_path, sources).items():
        out = tmp_path / f"out_{name}"
        _one_line_error(run_cli("data", "import", "--from", fmt, src, out), *words)
        assert not out.exists() and not list(tmp_path.glob(f".out_{name}*")), name
    _one_line_error(run_cli("data", "import", "--from", "coco", sources["voc"], tmp_path / "x"), "unknown format")
    _one_line_error(run_cli("data", "import", "--from", "voc", tmp_path / "nope", tmp_path / "x"), "not found")
