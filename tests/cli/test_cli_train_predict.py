"""`blitzmask train`, `predict` and `validate CKPT` end to end on the synthetic fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def trained(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    r = run_cli(
        "train", "--data", synth_dataset, "--model", "blitzmask-tiny", "--out", run, "--epochs", "1",
        "--batch-size", "8", "--input-size", "64", "--workers", "0", "--threads", "1", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    assert metrics == json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 24 // 8 and metrics["model"] == "blitzmask-tiny"
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    return run


def test_predict_writes_overlays_and_coco_results(trained: Path, synth_dataset: Path, tmp_path: Path) -> None:
    images = sorted((synth_dataset / "images" / "val").iterdir())[:2]
    out = tmp_path / "pred"
    r = run_cli("predict", trained / "best.pt", *images, "--out", out, "--score-threshold", "0.0", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    results = json.loads((out / "predictions.json").read_text())
    assert summary["instances"] == len(results) > 0  # threshold 0: every top-k peak is kept
    assert {p["file_name"] for p in results} == {p.name for p in images}
    for image in images:
        overlay = Image.open(out / f"{image.stem}.png")
        assert overlay.size == Image.open(image).size
    assert {"segmentation", "bbox", "score", "category_id", "image_id"} <= set(results[0])


def test_predict_bad_inputs_exit_2(trained: Path, tmp_path: Path) -> None:
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    r = run_cli("predict", trained / "best.pt", not_image, "--out", tmp_path / "o")
    assert r.returncode == 2 and "not a readable image" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("predict", trained / "best.pt", tmp_path / "missing.png", "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    r = run_cli("predict", corrupt, not_image, "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_validate_checkpoint_json(trained: Path, synth_dataset: Path) -> None:
    r = run_cli("validate", trained / "best.pt", "--data", synth_dataset, "--max-images", "3", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for key in ("mask_ap", "mask_ap50", "mask_ap75", "box_ap", "model", "images"):
        assert key in report
    assert report["images"] == 3 and report["model"] == "blitzmask-tiny"
    assert 0.0 <= report["mask_ap"] <= 1.0
    table = run_cli("validate", trained / "best.pt", "--data", synth_dataset, "--max-images", "2")
    assert table.returncode == 0 and "mask_ap" in table.stdout


def test_train_bad_input_exit_2(synth_dataset: Path, tmp_path: Path) -> None:
    r = run_cli("train", "--data", synth_dataset, "--model", "no-such", "--out", tmp_path / "x", "--epochs", "1")
    assert r.returncode == 2 and "no-such" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--data", synth_dataset, "--model", "blitzmask-tiny", "--out", tmp_path / "y")
    assert r.returncode == 2 and "--epochs" in r.stderr
    r = run_cli(
        "train", "--data", synth_dataset, "--model", "blitzmask-tiny", "--out", tmp_path / "z", "--epochs", "1",
        "--mosaic", "1.5",
    )  # fmt: skip
    assert r.returncode == 2 and "--mosaic" in r.stderr and "Traceback" not in r.stderr
