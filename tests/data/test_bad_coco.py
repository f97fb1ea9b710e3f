"""Hostile COCO files and prediction lists: the readers return normally or raise BadInput, never anything else.

Property tests mutate a small valid ground truth and prediction list (NaN, inf, huge ints, wrong types, missing or
extra keys, negative sizes, anywhere in the structure) and run `check_coco`, `CocoDataset.from_files` (then every
sample) and `evaluate` on both backends. Example tests pin the one-line messages of the worst cases.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import masks_to_rle
from blitzmask_deploy.data.coco import CocoDataset
from blitzmask_deploy.data.coco_check import MAX_OUTLINE, MAX_POLYGON_POINTS, check_coco
from blitzmask_deploy.data.coco_eval import BACKENDS, evaluate

H, W = 12, 16
SETTINGS = settings(max_examples=250, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

BAD_VALUES = st.one_of(
    st.sampled_from(
        [
            *(math.nan, math.inf, -math.inf, 2**31, 2**63, 2**64 + 1, 10**30, -(10**30), -1, 0, -0.5, 1e308, 1e-300),
            *(True, False, None, "", "1", "nan", "a.png", [], [1, 2], [[1, 2, 3]], [0] * 4, {}),
            *({"size": [H, W], "counts": "0"}, {"size": [H], "counts": []}, {"counts": {}}, {"size": "12x16"}),
        ]
    ),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
)
EXTRA_KEYS = ["id", "bbox", "area", "iscrowd", "score", "segmentation", "size", "counts", "caption", "keypoints"]


def _mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((1, H, W), bool)
    mask[0, y0:y1, x0:x1] = True
    return mask


def _ground_truth() -> dict:
    """Two images, two categories, one annotation of each segmentation kind (polygon, both RLE forms)."""
    uncompressed = {"size": [H, W], "counts": [3 * H + 2, 4, H - 4, 4, H * W - 3 * H - 2 - 4 - (H - 4) - 4]}
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "disc"}, {"id": 2, "name": "box"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 8, 2, 8, 9, 2, 9]], "area": 42.0,
             "bbox": [2, 2, 6, 7], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 2, "segmentation": uncompressed, "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": masks_to_rle(_mask(9, 1, 15, 6))[0]},
        ],
    }  # fmt: skip


def _predictions() -> list[dict]:
    return [
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": masks_to_rle(_mask(2, 2, 8, 9))[0],
         "bbox": [2.0, 2.0, 6.0, 7.0]},
        {"image_id": 2, "category_id": 1, "score": 0.4, "segmentation": masks_to_rle(_mask(9, 1, 14, 6))[0],
         "bbox": [9.0, 1.0, 5.0, 5.0]},
    ]  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """The path (keys and indices) of every node under `node`, itself excluded."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """`base` with one to three nodes replaced by a bad value, deleted, or given an extra key."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        value = copy.deepcopy(draw(BAD_VALUES))  # sampled lists and dicts are shared between draws
        if action == "set":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.sampled_from(EXTRA_KEYS))] = value
    return doc


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-coco") / "images"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(folder / name)
    return folder


def test_the_unmutated_inputs_are_valid(image_dir: Path) -> None:
    check_coco(_ground_truth(), Path("gt.json"))
    assert evaluate(_ground_truth(), _predictions())["mask_ap"] > 0
    ann = image_dir.parent / "valid.json"
    ann.write_text(json.dumps(_ground_truth()))
    dataset = CocoDataset.from_files(ann, image_dir)
    assert [len(dataset[i].gt) for i in range(len(dataset))] == [1, 2]


@SETTINGS
@given(doc=mutated(_ground_truth()))
def test_check_coco_accepts_or_refuses_with_one_line(doc: dict) -> None:
    try:
        check_coco(doc, Path("gt.json"))
    except BadInput as err:
        assert "\n" not in str(err) and str(err).startswith("gt.json: ")


@SETTINGS
@given(doc=mutated(_ground_truth()))
def test_dataset_from_files_opens_and_reads_or_refuses(image_dir: Path, doc: dict) -> None:
    ann = image_dir.parent / "ann.json"
    ann.write_text(json.dumps(doc))  # NaN and Infinity as JSON's extensions write them
    try:
        dataset = CocoDataset.from_files(ann, image_dir)
        for i in range(len(dataset)):
            dataset[i]
    except BadInput as err:
        assert "\n" not in str(err)


@SETTINGS
@given(gt=mutated(_ground_truth()), backend=st.sampled_from(BACKENDS))
def test_evaluate_bad_ground_truth(gt: dict, backend: str) -> None:
    _evaluate_or_refuse(gt, _predictions(), backend)


@SETTINGS
@given(preds=mutated(_predictions()), backend=st.sampled_from(BACKENDS))
def test_evaluate_bad_predictions(preds: list, backend: str) -> None:
    _evaluate_or_refuse(_ground_truth(), preds, backend)


@settings(max_examples=60, deadline=2000)
@given(cut=st.integers(0, 2000), junk=st.binary(max_size=8))
def test_truncated_or_garbled_files_are_refused(image_dir: Path, cut: int, junk: bytes) -> None:
    text = json.dumps(_ground_truth()).encode()
    ann = image_dir.parent / "garbled.json"
    ann.write_bytes(text[: cut % len(text)] + junk)
    with pytest.raises(BadInput):
        CocoDataset.from_files(ann, image_dir)


def _evaluate_or_refuse(gt: Any, preds: Any, backend: str) -> None:
    try:
        result = evaluate(gt, preds, backend=backend)
    except BadInput as err:
        assert "\n" not in str(err)
        return
    assert all(v is None or -1 <= v <= 1 for v in result.values())


def _gt_with(field: str, value: Any, record: str = "annotations") -> dict:
    gt = _ground_truth()
    gt[record][0][field] = value
    return gt


@pytest.mark.parametrize(
    ("gt", "expected"),
    [
        (_gt_with("segmentation", [[1, 1, 5, math.nan, 5, 5]]), "annotations[0] (id 1): segmentation polygon"),
        (_gt_with("segmentation", [[1, 1, 5, math.inf, 5, 5]]), "finite numbers, got inf"),
        (_gt_with("segmentation", "polygon"), "annotations[0] (id 1): segmentation must be"),
        (_gt_with("segmentation", {"size": [H, W], "counts": {}}), "segmentation RLE counts must be"),
        (_gt_with("segmentation", {"size": 12, "counts": "0"}), "RLE size must be a list of two integers"),
        (_gt_with("segmentation", {"size": [H, True], "counts": "0"}), "RLE size must be a list of two integers"),
        (_gt_with("segmentation", [[0.5, 0.5] * (MAX_POLYGON_POINTS + 1)]), "polygon points (at most"),
        (_gt_with("segmentation", [[0, 0, W, H] * 50_000]), f"(at most {MAX_OUTLINE})"),
        (_gt_with("bbox", [1, 1, math.nan, 2]), "annotations[0] (id 1): bbox must be 4 finite numbers"),
        (_gt_with("bbox", ["1", 1, 2, 2]), "bbox must be 4 finite numbers"),
        (_gt_with("area", math.inf), "annotations[0] (id 1): area must be a finite number"),
        (_gt_with("iscrowd", 2), "iscrowd must be 0 or 1"),
        (_gt_with("image_id", [1]), "image_id must be an integer"),
        (_gt_with("height", 12.0, "images"), "images[0] (id 1): height must be an integer"),
        (_gt_with("width", True, "images"), "images[0] (id 1): width must be an integer"),
        (_gt_with("height", 100_001, "images"), "height must be an integer from 1 to 100000"),
        (_gt_with("height", 0, "images"), "height must be an integer from 1 to 100000"),
        (_gt_with("file_name", 7, "images"), "images[0] (id 1): file_name must be a non-empty string"),
        (_gt_with("id", "1", "categories"), "categories[0]: id must be an integer"),
        (_gt_with("name", None, "categories"), "categories[0] (id 1): name must be a string"),
    ],
    ids=[
        "nan-polygon", "inf-polygon", "segmentation-string", "counts-dict", "size-int", "size-bool",
        "absurd-points", "absurd-outline", "nan-bbox", "string-bbox", "inf-area", "iscrowd-2", "image-id-list",
        "float-height", "bool-width", "huge-height", "zero-height", "file-name-int", "category-id-string",
        "category-name-none",
    ],
)  # fmt: skip
def test_ground_truth_problems_name_file_record_and_field(tmp_path: Path, gt: dict, expected: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(BadInput) as err:
        evaluate(path, _predictions())
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("score", math.nan, "predictions[0]: score must be a finite number, got nan"),
        ("score", True, "score must be a finite number"),
        ("bbox", [0, 0, math.inf, 1], "predictions[0]: bbox must be 4 finite numbers"),
        ("bbox", [0, 0, -1, 1], "bbox [0, 0, -1, 1] has negative size"),
        ("segmentation", {"size": 12, "counts": "0"}, "RLE size must be a list of two integers"),
        ("image_id", "1", "image_id must be an integer"),
    ],
)
def test_prediction_problems_name_file_entry_and_field(tmp_path: Path, field: str, value: Any, expected: str) -> None:
    preds = _predictions()
    preds[0][field] = value
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(preds))
    with pytest.raises(BadInput) as err:
        evaluate(_ground_truth(), path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


@pytest.mark.parametrize("text", ["[" * 100_000, "[" + "1" * 5000 + "]"], ids=["deep", "long-int"])
def test_unparsable_json_is_bad_input(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pred.json"
    path.write_text(text)
    with pytest.raises(BadInput, match="not valid JSON"):
        evaluate(_ground_truth(), path)
