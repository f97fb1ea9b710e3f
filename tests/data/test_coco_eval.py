"""Evaluator: faster-coco-eval agrees exactly with pycocotools; GT as predictions scores 1; bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import masks_to_rle
from blitzmask_deploy.data.coco_eval import METRIC_KEYS, evaluate
from blitzmask_deploy.data.synthetic import generate_dataset
from tests.support.perturb import perturb_predictions


def _gt(root: Path, split: str = "train") -> dict:
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def _gt_as_predictions(gt: dict, *, bbox: bool) -> list[dict]:
    keys = ("image_id", "category_id", "segmentation") + (("bbox",) if bbox else ())
    return [{**{k: a[k] for k in keys}, "score": 1.0} for a in gt["annotations"]]


@pytest.fixture(scope="module")
def gt_320(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """30 images at 320×320, where COCO small, medium and large instances all occur."""
    root = generate_dataset(tmp_path_factory.mktemp("eval"), train=0, val=30, size=320, seed=3, progress=False)
    return _gt(root, "val")


@pytest.mark.parametrize(("seed", "with_bbox"), [(0, True), (1, False), (2, True), (3, True)])
def test_faster_coco_eval_matches_pycocotools_exactly(gt_320: dict, seed: int, with_bbox: bool) -> None:
    gt = gt_320
    preds = perturb_predictions(gt, np.random.default_rng(seed), with_bbox=with_bbox, drop=0.1 * seed)
    faster = evaluate(gt, preds)
    reference = evaluate(gt, preds, backend="pycocotools")
    assert set(faster) == set(METRIC_KEYS)
    assert faster == reference  # every figure (both rounded to 12 decimals, see coco_eval.DECIMALS)
    assert 0.0 < faster["mask_ap"] < 1.0 and faster["mask_ap50"] > faster["mask_ap75"]
    assert min(faster["mask_ap_small"], faster["mask_ap_medium"], faster["mask_ap_large"]) > 0.0
    assert (faster["box_ap"] is not None) == with_bbox


def test_ground_truth_fed_back_scores_one(synth_dataset: Path) -> None:
    gt = _gt(synth_dataset, "val")
    for bbox in (False, True):
        result = evaluate(gt, _gt_as_predictions(gt, bbox=bbox))
        assert result["mask_ap"] == result["mask_ap50"] == result["mask_ap75"] == 1.0
        assert result["box_ap"] == (1.0 if bbox else None)


def test_files_and_dicts_give_the_same_result_and_inputs_are_not_modified(synth_dataset: Path, tmp_path: Path) -> None:
    gt = _gt(synth_dataset, "val")
    preds = perturb_predictions(gt, np.random.default_rng(4))
    gt_before, preds_before = copy.deepcopy(gt), copy.deepcopy(preds)
    from_dicts = evaluate(gt, preds)
    assert gt == gt_before and preds == preds_before
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(preds))
    assert evaluate(synth_dataset / "annotations" / "instances_val.json", pred_file) == from_dicts


def test_masks_to_rle_round_trips() -> None:
    masks = np.random.default_rng(0).random((3, 17, 23)) < 0.3
    rles = masks_to_rle(masks)
    assert all(isinstance(r["counts"], str) and r["size"] == [17, 23] for r in rles)
    np.testing.assert_array_equal(mask_utils.decode(rles).transpose(2, 0, 1).astype(bool), masks)
    assert masks_to_rle(np.zeros((0, 4, 4), bool)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"image_id": 999}, "unknown image id 999"),
        ({"category_id": 42}, "unknown category id 42"),
        ({"segmentation": [[1, 1, 5, 1, 5, 5]]}, "compressed RLE"),
        ({"segmentation": {"size": [3, 3], "counts": "0"}}, "mask size"),
        ({"score": "high"}, "score"),
        ({"segmentation": {"size": [128, 128], "counts": "0d"}}, "corrupt"),
    ],
)
def test_bad_predictions_are_bad_input(synth_dataset: Path, change: dict, expected: str) -> None:
    gt = _gt(synth_dataset, "val")
    preds = _gt_as_predictions(gt, bbox=False)
    preds[1].update(change)
    with pytest.raises(BadInput, match=expected):
        evaluate(gt, preds)


def test_bad_files_and_backend_are_bad_input(synth_dataset: Path, tmp_path: Path) -> None:
    gt_path = synth_dataset / "annotations" / "instances_val.json"
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(BadInput, match="not valid JSON"):
        evaluate(gt_path, bad)
    with pytest.raises(BadInput, match="not found"):
        evaluate(tmp_path / "missing.json", [])
    with pytest.raises(BadInput, match="backend"):
        evaluate(gt_path, [], backend="detectron")
    bad.write_text('{"not": "a list"}')
    with pytest.raises(BadInput, match="list"):
        evaluate(gt_path, bad)
    with pytest.raises(BadInput, match="annotations"):
        evaluate({"images": []}, [])


def test_numpy_scalars_in_predictions_are_accepted(synth_dataset: Path) -> None:
    gt = _gt(synth_dataset, "val")
    preds = [
        p | {"image_id": np.int64(p["image_id"]), "score": np.float32(0.5)} for p in _gt_as_predictions(gt, bbox=False)
    ]
    assert evaluate(gt, preds)["mask_ap"] == 1.0
