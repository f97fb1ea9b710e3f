"""`blitzmask data check`: the figures of a valid dataset, every planted problem reported on its own line (exit 1),
the listing capped, and a folder that is no dataset refused (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.check import MAX_LISTED, check_dataset
from blitzmask_deploy.data.synthetic import generate_dataset, summarize_dataset
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("check") / "ds"
    generate_dataset(root, train=6, val=3, size=64, seed=2, progress=False)
    return root


def _copy(dataset: Path, tmp_path: Path) -> tuple[Path, dict, dict]:
    root = shutil.copytree(dataset, tmp_path / "ds")
    return root, _load(root, "train"), _load(root, "val")


def _load(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def _save(root: Path, split: str, coco: dict) -> None:
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def test_valid_dataset_figures(dataset: Path) -> None:
    r = run_cli("data", "check", dataset, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] and report["problems"] == []
    expected = summarize_dataset(dataset)["splits"]
    for split, figures in report["splits"].items():
        assert figures["images"] == expected[split]["images"]
        assert figures["instances"] == expected[split]["instances"]
        assert list(figures["sizes"].values()) == expected[split]["sizes"]
        assert figures["crowd"] == 0
        per_name = {c["name"]: c["instances"][split] for c in report["categories"]}
        assert per_name == expected[split]["per_category"]
    assert [c["id"] for c in report["categories"]] == [1, 2, 3, 4, 5, 6]
    table = run_cli("data", "check", dataset)
    assert table.returncode == 0 and "no problems found" in table.stdout and "ellipse" in table.stdout


def _plant_every_problem(root: Path, train: dict, val: dict) -> dict[str, str]:
    """Break a copy of the dataset once per kind of problem; returns kind -> a word its message holds."""
    h, w = 64, 64
    imgs = train["images"]
    (root / "images" / "train" / imgs[0]["file_name"]).unlink()
    (root / "images" / "train" / imgs[1]["file_name"]).write_bytes(b"not an image")
    imgs[2]["width"] = 65  # its masks are 64 wide: drop them, so that only the size differs
    train["annotations"] = [a for a in train["annotations"] if a["image_id"] != imgs[2]["id"]]
    imgs.append({**imgs[3], "id": 100})  # the same file as image 4
    imgs.append({**imgs[4]})  # a duplicate image id
    imgs.append({"id": 101, "file_name": imgs[5]["file_name"], "width": 64})  # no height
    val["images"][2]["file_name"] = "../train/" + imgs[5]["file_name"]
    anns, base = train["annotations"], train["annotations"][0]
    anns[1]["id"] = anns[0]["id"]
    image_id = imgs[4]["id"]
    new = [
        {"segmentation": [[-10, -10, 5, 0, 0, 5]]},
        {"segmentation": base["segmentation"], "bbox": [60, 60, 20, 20]},
        {"segmentation": {"size": [h, w], "counts": [h * w]}},
        {"segmentation": {"size": [h, w], "counts": "0d1"}},
        {"segmentation": base["segmentation"], "category_id": 777},
        {"segmentation": base["segmentation"], "image_id": 999},
    ]
    for k, fields in enumerate(new):
        anns.append({"id": 1000 + k, "image_id": image_id, "category_id": 1, "iscrowd": 0, **fields})
    train["categories"].append({"id": 42, "name": "ghost"})  # no instances, and only in train
    _save(root, "train", train)
    _save(root, "val", val)
    return {
        "missing-image": "image file missing",
        "unreadable-image": "not a readable image",
        "size-mismatch": "but the JSON says 65x64",
        "duplicate-file": "same file as image id",
        "duplicate-id": "duplicate image id",
        "bad-record": "missing height",
        "outside-folder": "../train/",
        "outside-image": "outside the 64x64 image",
        "empty-mask": "the mask is empty",
        "corrupt-rle": "corrupt",
        "unknown-id": "unknown category id 777",
        "unused-category": "category 42 (ghost) has no instances in the train split",
        "category-mismatch": "categories of train and val differ",
    }


def test_every_planted_problem_is_reported(dataset: Path, tmp_path: Path) -> None:
    root, train, val = _copy(dataset, tmp_path)
    expected = _plant_every_problem(root, train, val)
    report = check_dataset(root, progress=False)
    assert not report.passed
    for kind, words in expected.items():
        messages = [p.message for p in report.problems if p.kind == kind]
        assert any(words in m for m in messages), (kind, messages)
    assert {p.kind for p in report.problems} == set(expected)
    assert sum("unknown image id 999" in p.message for p in report.problems) == 1
    assert sum("duplicate annotation id" in p.message for p in report.problems) == 1
    assert sum(p.kind == "outside-image" for p in report.problems) == 2  # the polygon and the bbox
    assert all("\n" not in p.message for p in report.problems)

    r = run_cli("data", "check", root)
    assert r.returncode == 1, r.stderr
    listed = [line.strip() for line in r.stdout.splitlines() if line.startswith("  ")]
    assert listed == [p.message for p in report.problems]  # one line each
    assert f"{len(report.problems)} problem(s):" in r.stdout
    as_json = run_cli("data", "check", root, "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["problems"] == [vars(p) for p in report.problems]


def test_listing_is_capped(dataset: Path, tmp_path: Path) -> None:
    root, train, _ = _copy(dataset, tmp_path)
    empty = {"size": [64, 64], "counts": [64 * 64]}
    for k in range(MAX_LISTED + 12):
        train["annotations"].append({"id": 5000 + k, "image_id": 1, "category_id": 1, "segmentation": empty})
    _save(root, "train", train)
    report = check_dataset(root, progress=False)
    assert len(report.problems) == MAX_LISTED + 12
    table = report.to_table().splitlines()
    assert sum(line.startswith("  instances_train.json: ") for line in table) == MAX_LISTED
    assert table[-1] == "  ... and 12 more (--json lists them all)"


def test_split_problems_and_not_a_dataset(dataset: Path, tmp_path: Path) -> None:
    root, _, _ = _copy(dataset, tmp_path)
    (root / "annotations" / "instances_val.json").unlink()
    report = check_dataset(root, progress=False)
    assert [p.kind for p in report.problems] == ["missing-split"] and list(report.splits) == ["train"]
    (root / "annotations" / "instances_val.json").write_text("{not json")
    assert [p.kind for p in check_dataset(root, progress=False).problems] == ["bad-file"]
    _save(root, "val", {"images": [], "annotations": [], "categories": _load(root, "train")["categories"]})
    assert [p.message for p in check_dataset(root, progress=False).problems] == ["the val split has no usable images"]

    with pytest.raises(BadInput, match="is not a dataset"):
        check_dataset(tmp_path / "nothing")
    r = run_cli("data", "check", root / "images")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"error: {root / 'images'} is not a dataset: neither annotations/instances_train.json nor instances_val.json"
    ]
