"""Manifest round trip and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blitzmask_deploy.core.artifacts import (
    CheckpointRef,
    ExportedFile,
    Manifest,
    TensorSpec,
    load_manifest,
    sha256_file,
    verify_file,
    write_manifest,
)
from blitzmask_deploy.core.errors import BadInput


def make_manifest(tmp_path: Path) -> Manifest:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3" + bytes(range(64)))
    spec = TensorSpec(name="image", shape=[1, 64, 64, 3], dtype="float32")
    entry = ExportedFile(
        file="m.tflite",
        format="tflite",
        precision="fp32",
        sha256=sha256_file(model),
        bytes=model.stat().st_size,
        inputs=[spec],
        outputs=[spec.model_copy(update={"name": "heatmap"})],
    )
    return Manifest(
        variant="blitzmask-tiny",
        input_size=64,
        categories=[{"id": 1, "name": "a"}],
        checkpoint=CheckpointRef(path="last.pt", sha256="0" * 64),
        files=[entry],
        toolchain={"torch": "x"},
        created="2026-11-25T00:00:00Z",
    )


def test_round_trip_and_lookup(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    write_manifest(manifest, tmp_path)
    loaded = load_manifest(tmp_path)
    assert loaded == manifest
    assert loaded.file("tflite-fp32").file == "m.tflite"
    assert verify_file(tmp_path, loaded.files[0]) == tmp_path / "m.tflite"


def test_sha_mismatch_is_bad_input(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    (tmp_path / "m.tflite").write_bytes(b"tampered")
    with pytest.raises(BadInput, match="does not match the manifest"):
        verify_file(tmp_path, manifest.files[0])


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"schema_version": 9}', "schema_version"),
        ('{"schema_version": 1, "variant": "x"}', "invalid manifest at"),
    ],
)
def test_malformed_manifest(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(BadInput, match=message):
        load_manifest(tmp_path)


def test_unknown_key_rejected(tmp_path: Path) -> None:
    raw = make_manifest(tmp_path).model_dump()
    raw["surprise"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BadInput, match="surprise"):
        load_manifest(tmp_path)


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no manifest\.json"):
        load_manifest(tmp_path / "nope")
