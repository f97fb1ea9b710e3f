"""An export replaces its folder whole: interrupted, the old export is left as it was; finished, nothing of the old
one (files, validation.json) remains beside the new files; a folder holding anything else is refused."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from blitzmask_deploy.core import folders
from blitzmask_deploy.core.artifacts import VALIDATION_NAME, load_manifest, verify_file
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.export.pipeline import export_checkpoint


def _verified(folder: Path) -> list[str]:
    """The files of the export in `folder`, after checking every one against its manifest."""
    manifest = load_manifest(folder)
    return sorted(verify_file(folder, entry).name for entry in manifest.files)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def old_export(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """An ONNX export that has been validated (validation.json beside it)."""
    out = tmp_path / "export"
    export_checkpoint(tiny_checkpoint, out, formats=["onnx"], progress=False)
    (out / VALIDATION_NAME).write_text(json.dumps({"variants": []}))
    return out


def test_an_interrupted_export_leaves_the_old_export_intact(
    old_export: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _contents(old_export)

    def interrupted(wrapper, input_size, heads, path: Path) -> None:
        path.write_bytes(b"half an onnx file")
        raise KeyboardInterrupt

    monkeypatch.setattr("blitzmask_deploy.export.onnx.export_onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(tiny_checkpoint, old_export, formats=["onnx"], progress=False)
    assert _contents(old_export) == before
    assert _verified(old_export) == ["model.onnx"]
    assert os.listdir(old_export.parent) == ["export"]  # the staging folder is gone


def test_a_finished_export_replaces_every_old_file(old_export: Path, tiny_checkpoint: Path) -> None:
    (old_export / "model_int8.tflite").write_bytes(b"an int8 file of the old export")
    export_checkpoint(tiny_checkpoint, old_export, formats=["onnx"], progress=False)
    assert sorted(os.listdir(old_export)) == ["manifest.json", "model.onnx"]  # no old validation.json, no int8
    assert _verified(old_export) == ["model.onnx"]
    assert os.listdir(old_export.parent) == ["export"]


def test_a_folder_with_other_files_is_refused_untouched(tiny_checkpoint: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"a checkpoint")
    with pytest.raises(BadInput, match=r"holds files an export does not write \(best\.pt\)"):
        export_checkpoint(tiny_checkpoint, run, formats=["onnx"], progress=False)
    assert _contents(run) == {"best.pt": b"a checkpoint"}
    assert os.listdir(tmp_path) == ["run"]


def test_a_signal_during_the_swap_waits_until_the_new_folder_is_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, new = tmp_path / "export", tmp_path / "new"
    out.mkdir()
    (out / "manifest.json").write_text("old")
    new.mkdir()
    (new / "manifest.json").write_text("new")
    rename = os.rename

    def rename_then_interrupt(src: Path, dst: Path) -> None:
        rename(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # between the two renames

    monkeypatch.setattr(folders.os, "rename", rename_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        folders.replace_folder(out, new)
    assert (out / "manifest.json").read_text() == "new"
    assert os.listdir(tmp_path) == ["export"]  # the old folder deleted before the signal was let through
