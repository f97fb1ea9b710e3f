"""`blitzmask data synth` and `blitzmask eval` from the command line: outputs, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def cli_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("cli") / "data"
    r = run_cli("data", "synth", str(out), "--train", "6", "--val", "4", "--size", "96", "--seed", "3", "--json")
    return out, r


def test_synth_writes_dataset_and_one_json_object(cli_dataset) -> None:
    out, r = cli_dataset
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # exactly one JSON document on stdout
    assert summary["splits"]["train"]["images"] == 6 and summary["splits"]["val"]["images"] == 4
    assert r.stderr == ""  # progress bars are drawn on a terminal only: none in a pipe or a log
    for split, n in (("train", 6), ("val", 4)):
        assert len(list((out / "images" / split).glob("*.jpg"))) == n
        coco = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
        assert len(coco["annotations"]) == summary["splits"][split]["instances"]


def test_eval_gt_as_predictions_is_perfect(cli_dataset, tmp_path: Path) -> None:
    out, _ = cli_dataset
    gt = out / "annotations" / "instances_val.json"
    coco = json.loads(gt.read_text())
    assert coco["annotations"]
    preds = [
        {k: a[k] for k in ("image_id", "category_id", "segmentation", "bbox")} | {"score": 0.9}
        for a in coco["annotations"]
    ]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    r = run_cli("eval", "--gt", str(gt), "--pred", str(pred), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["mask_ap"] == 1.0 and result["box_ap"] == 1.0
    assert set(result) == {
        "mask_ap", "mask_ap50", "mask_ap75", "mask_ap_small", "mask_ap_medium", "mask_ap_large", "box_ap"
    }  # fmt: skip
    table = run_cli("eval", "--gt", str(gt), "--pred", str(pred), "--backend", "pycocotools")
    assert table.returncode == 0 and "mask_ap          1.0000" in table.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"image_id": 12345, "category_id": 1, "score": 1, "segmentation": {"size": [96, 96], "counts": "0"}}]',
         "unknown image id 12345"),
        ('[{"image_id": 1, "category_id": 77, "score": 1, "segmentation": {"size": [96, 96], "counts": "0"}}]',
         "unknown category id 77"),
        ("[{oops", "not valid JSON"),
    ],
    ids=["unknown-image", "unknown-category", "bad-json"],
)  # fmt: skip
def test_eval_bad_predictions_exit_2_with_one_line(cli_dataset, tmp_path: Path, content: str, expected: str) -> None:
    out, _ = cli_dataset
    pred = tmp_path / "pred.json"
    pred.write_text(content)
    r = run_cli("eval", "--gt", str(out / "annotations" / "instances_val.json"), "--pred", str(pred))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in r.stderr


def test_eval_missing_or_malformed_gt_exit_2(tmp_path: Path) -> None:
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    r = run_cli("eval", "--gt", str(tmp_path / "nope.json"), "--pred", str(pred))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: ground truth file not found: {tmp_path / 'nope.json'}"
    ]
    bad_gt = tmp_path / "gt.json"
    bad_gt.write_text(json.dumps({"images": [], "categories": []}))
    r = run_cli("eval", "--gt", str(bad_gt), "--pred", str(pred))
    assert r.returncode == 2 and "annotations" in r.stderr and "Traceback" not in r.stderr


def test_synth_rejects_bad_size(tmp_path: Path) -> None:
    r = run_cli("data", "synth", str(tmp_path / "d"), "--train", "1", "--val", "1", "--size", "8")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.e2e
def test_issue_dataset_round_trip(tmp_path: Path) -> None:
    """The issue's acceptance check: 200/50 images at 320, a valid COCO dataset, GT as predictions → mask_ap 1."""
    from pycocotools.coco import COCO

    from blitzmask_deploy.data.coco import CocoDataset

    out = tmp_path / "d"
    r = run_cli("data", "synth", str(out), "--train", "200", "--val", "50", "--size", "320", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    sizes = json.loads(r.stdout)["splits"]["val"]["sizes"]
    assert min(sizes) > 0  # small, medium and large instances all occur
    for split in ("train", "val"):
        ds = CocoDataset.from_split(out, split)
        assert len(ds) == {"train": 200, "val": 50}[split]
        coco = COCO(str(ds.ann_path))  # the reference API reads it too
        assert len(coco.getAnnIds()) == len(ds.coco["annotations"])
    gt = out / "annotations" / "instances_val.json"
    preds = [
        {k: a[k] for k in ("image_id", "category_id", "segmentation")} | {"score": 1.0}
        for a in json.loads(gt.read_text())["annotations"]
    ]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    r = run_cli("eval", "--gt", str(gt), "--pred", str(pred), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["mask_ap"] == result["mask_ap_small"] == result["mask_ap_large"] == 1.0
    assert result["box_ap"] is None


def test_synth_refuses_a_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    args = ("data", "synth", out, "--train", "2", "--val", "1", "--size", "64", "--quiet")
    refused = run_cli(*args)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert (out / "mine.txt").read_text() == "keep"
    replaced = run_cli(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert not (out / "mine.txt").exists() and (out / "annotations" / "instances_val.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no staging folder left beside it
