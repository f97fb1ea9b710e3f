"""`blitzmask validate EXPORT_DIR`: AP, drop, parity and budgets of every exported file against its checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blitzmask_deploy.core.artifacts import load_manifest, sha256_file, write_manifest
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.export.wrapper import HEADS

pytestmark = pytest.mark.slow


def test_validate_export_passes_and_writes_json(tiny_export: Path, synth_dataset: Path) -> None:
    from blitzmask_deploy.validate.export_dir import run_validate_export

    result = run_validate_export(tiny_export, synth_dataset, max_images=3, threads=1, progress=False)
    saved = json.loads((tiny_export / "validation.json").read_text())
    assert saved == json.loads(json.dumps(result.to_json()))
    assert saved["variant"] == "blitzmask-tiny" and saved["reference"]["name"] == "checkpoint"
    rows = {row["name"]: row for row in saved["variants"]}
    assert set(rows) == {"tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32"}
    for row in rows.values():
        assert row["mask_ap_drop"] == pytest.approx(saved["reference"]["mask_ap"] - row["mask_ap"])
        assert row["latency_ms_p50"] > 0 and set(row["parity"]) == set(HEADS)
    assert max(rows["tflite-fp32"]["parity"].values()) <= 1e-4
    assert rows["tflite-int8"]["budget"]["parity_max_abs"] is None  # numerics.yaml sets no int8 parity budget
    assert result.passed and saved["passed"]
    assert "PASSED" in result.to_table()


def test_validate_export_fails_rows_over_budget(tiny_export: Path, synth_dataset: Path, monkeypatch) -> None:
    import blitzmask_deploy.core.cards as config
    from blitzmask_deploy.validate.export_dir import run_validate_export

    strict = config.NumericsCard(
        ap_drop_max={"fp32": 0.0, "fp16": 0.0, "int8": 0.0, "onnx": 0.0},
        parity_max_abs={"fp32": 0.0, "fp16": 0.0, "onnx": 1.0},
    )
    monkeypatch.setattr(config, "load_numerics", lambda variant: strict)
    result = run_validate_export(tiny_export, synth_dataset, max_images=1, threads=1, progress=False)
    rows = {f.file.name: f for f in result.files}
    assert not result.passed
    assert not rows["tflite-fp16"].passed and "parity" in rows["tflite-fp16"].failures[0]
    assert rows["onnx-fp32"].passed
    assert "FAIL" in result.to_table()


def test_validate_export_rejects_changed_or_foreign_checkpoint(
    tiny_export: Path, tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.validate.export_dir import run_validate_export

    copy = shutil.copytree(tiny_export, tmp_path / "export")
    manifest = load_manifest(copy)
    manifest.checkpoint.sha256 = "f" * 64
    write_manifest(manifest, copy)
    with pytest.raises(BadInput, match="sha256 differs"):
        run_validate_export(copy, synth_dataset, max_images=1, progress=False)
    manifest.checkpoint.sha256 = sha256_file(tiny_checkpoint)
    manifest.variant = "blitzmask-b0"
    write_manifest(manifest, copy)
    with pytest.raises(BadInput, match="checkpoint is blitzmask-tiny, the export is blitzmask-b0"):
        run_validate_export(copy, synth_dataset, max_images=1, progress=False)


def test_a_partial_validation_never_replaces_one_of_more_images(
    tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from tests.conftest import run_cli

    export = shutil.copytree(tiny_export, tmp_path / "export")
    (export / "validation.json").unlink(missing_ok=True)
    saved = export / "validation.json"

    def validate(*extra: object) -> dict:
        r = run_cli("validate", export, "--data", synth_dataset, "--json", *extra, timeout=300)
        assert r.returncode in (0, 1), r.stderr[-2000:]
        assert "was not saved" not in r.stderr
        return json.loads(r.stdout)

    first = validate("--max-images", "2")  # over no file: written
    assert first["images"] == 2 and first["partial"] and json.loads(saved.read_text()) == first
    second = validate("--max-images", "3")  # over an earlier partial one of fewer images: written
    assert second["images"] == 3 and json.loads(saved.read_text()) == second
    full = validate()
    assert full["images"] == 8 and not full["partial"] and json.loads(saved.read_text()) == full
    before = saved.read_bytes()
    r = run_cli("validate", export, "--data", synth_dataset, "--json", "--max-images", "3", timeout=300)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert json.loads(r.stdout)["images"] == 3  # printed as usual
    (note,) = [line for line in r.stderr.splitlines() if "was not saved" in line]
    assert note == f"{saved} holds a validation of 8 images: this partial one (3 images) was not saved"
    assert saved.read_bytes() == before
