"""`blitzmask export` and `blitzmask coverage` from the command line: bad input and one end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


def run_in_process(args: list[str], monkeypatch, capsys) -> subprocess.CompletedProcess[str]:
    """The CLI's `main` in this process (no interpreter start-up), as a CompletedProcess."""
    from blitzmask_deploy.cli.app import main

    monkeypatch.setattr(sys, "argv", ["blitzmask", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, int(exit_info.value.code or 0), captured.out, captured.err)


def _one_error_line(r: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], r.stderr


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from blitzmask_deploy.core.checkpoints import save_checkpoint
    from blitzmask_deploy.modeling.registry import create_model

    torch.manual_seed(0)
    model = create_model("blitzmask-tiny", num_classes=5, input_size=64)
    categories = [{"id": i + 1, "name": f"c{i}"} for i in range(5)]
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, categories=categories)


def test_export_corrupt_checkpoint_is_one_line_exit_2(tmp_path: Path) -> None:
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(b"\x80\x02garbage")
    _one_error_line(run_cli("export", str(ckpt), "--out", str(tmp_path / "out"), "--formats", "fp32"), "bad.pt")
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip"])
def test_export_empty_or_foreign_checkpoint_is_exit_2(tmp_path: Path, content: bytes, monkeypatch, capsys) -> None:
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(content)
    args = ["export", str(ckpt), "--out", str(tmp_path / "out"), "--formats", "fp32"]
    _one_error_line(run_in_process(args, monkeypatch, capsys), "bad.pt")


def test_export_truncated_checkpoint_is_exit_2(tiny_ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_ckpt.read_bytes()[:2000])
    args = ["export", str(cut), "--out", str(tmp_path / "out"), "--formats", "fp32"]
    _one_error_line(run_in_process(args, monkeypatch, capsys), "cut.pt")


def test_export_checkpoint_of_another_variant_is_exit_2(tiny_ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import torch

    payload = torch.load(tiny_ckpt, weights_only=True)
    payload["config"]["variant"] = "blitzmask-b0"
    payload["config"]["backbone"] = "efficientnet-lite0"
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    args = ["export", str(other), "--out", str(tmp_path / "out"), "--formats", "fp32"]
    _one_error_line(run_in_process(args, monkeypatch, capsys), "other.pt")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--formats", "fp32,tf"], "unknown format tf"),
        (["--formats", "int8"], "--calib"),
        (["--formats", "int8", "--calib", "/no/such/dir"], "calibration data not found"),
    ],
)
def test_export_bad_options_are_exit_2(
    tiny_ckpt: Path, tmp_path: Path, args: list[str], fragment: str, monkeypatch, capsys
) -> None:
    cli_args = ["export", str(tiny_ckpt), "--out", str(tmp_path / "out"), *args]
    _one_error_line(run_in_process(cli_args, monkeypatch, capsys), fragment)


def test_coverage_without_manifest_is_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    _one_error_line(run_in_process(["coverage", str(tmp_path)], monkeypatch, capsys), "no manifest.json")


@pytest.mark.slow
@pytest.mark.e2e
def test_export_then_coverage_then_validate(synth_dataset: Path, tmp_path: Path) -> None:
    from blitzmask_deploy.core.checkpoints import save_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.modeling.registry import create_model

    dataset = CocoDataset.from_split(synth_dataset, "val")
    ckpt = save_checkpoint(
        tmp_path / "tiny.pt",
        create_model("blitzmask-tiny", num_classes=dataset.num_classes, input_size=64),
        categories=dataset.categories,
    )
    out = tmp_path / "export"
    args = ["--formats", "fp32,int8", "--calib", str(synth_dataset), "--calib-images", "4", "--json"]
    r = run_cli("export", str(ckpt), "--out", str(out), *args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads(r.stdout)  # exactly one JSON object: converter chatter went to stderr
    assert [f["file"] for f in manifest["files"]] == ["model_fp32.tflite", "model_int8.tflite"]
    assert json.loads((out / "manifest.json").read_text()) == manifest

    r = run_cli("coverage", str(out), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    files = {f["name"]: f for f in json.loads(r.stdout)["files"]}
    assert files["tflite-int8"]["float_ops"] == 0
    assert files["tflite-fp32"]["gpu_compatible_pct"] == 100.0
    assert {"index", "op", "gpu_compatible", "integer", "module"} <= set(files["tflite-int8"]["ops"][0])

    r = run_cli("validate", str(out), "--data", str(synth_dataset), "--max-images", "2", "--json", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert [v["name"] for v in report["variants"]] == ["tflite-fp32", "tflite-int8"]
    assert report["passed"] is True
