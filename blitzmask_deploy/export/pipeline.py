"""`export_checkpoint`: a checkpoint → `model_fp32.tflite`, `model_fp16.tflite`, `model_int8.tflite`, `model.onnx`
and `manifest.json`, each file described by what is read back from it (sha256, bytes, exact I/O spec)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from torch import nn

from blitzmask_deploy.core.artifacts import (
    EXPORT_FORMATS,
    FILE_NAMES,
    CheckpointRef,
    ExportedFile,
    Manifest,
    sha256_file,
    write_manifest,
)
from blitzmask_deploy.core.errors import BadInput

_TOOLCHAIN = ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "onnx", "onnxruntime", "blitzmask-deploy")


def export_checkpoint(
    ckpt: Path,
    out: Path,
    *,
    formats: Sequence[str] = EXPORT_FORMATS,
    calib: Path | None = None,
    calib_images: int = 128,
    progress: bool = True,
) -> Manifest:
    """Export checkpoint `ckpt` to `out` in `formats`; int8 is calibrated on `calib_images` images of `calib`."""
    from blitzmask_deploy.core.checkpoints import read_checkpoint
    from blitzmask_deploy.modeling.registry import model_from_checkpoint

    _check_formats(formats, calib)
    checkpoint = read_checkpoint(ckpt)
    model = model_from_checkpoint(checkpoint)
    return export_model(
        model,
        out,
        variant=model.config.variant,
        input_size=model.config.input_size,
        categories=checkpoint.categories,
        checkpoint=CheckpointRef(path=str(Path(ckpt).resolve()), sha256=checkpoint.sha256),
        architecture=_architecture(model, model.config),
        formats=formats,
        calib=calib,
        calib_images=calib_images,
        progress=progress,
    )


def export_model(
    model: nn.Module,
    out: Path,
    *,
    variant: str,
    input_size: int,
    categories: list[dict],
    checkpoint: CheckpointRef,
    architecture: dict | None = None,
    formats: Sequence[str] = EXPORT_FORMATS,
    calib: Path | None = None,
    calib_images: int = 128,
    progress: bool = True,
) -> Manifest:
    """Export an in-memory model (forward → dict of NCHW head tensors) and write `out/manifest.json`."""
    from blitzmask_deploy.export.calibration import calibration_images
    from blitzmask_deploy.export.onnx import export_onnx
    from blitzmask_deploy.export.quantize import quantize_int8
    from blitzmask_deploy.export.tflite import cast_fp16, convert_fp32
    from blitzmask_deploy.export.wrapper import ExportWrapper, fuse_conv_bn, head_names

    _check_formats(formats, calib)
    wanted = [f for f in EXPORT_FORMATS if f in formats]
    calibration = calibration_images(calib, input_size, calib_images, progress=progress) if "int8" in wanted else []
    out.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(fuse_conv_bn(model))
    heads = head_names(model, input_size)
    fp32 = out / FILE_NAMES["fp32"] if "fp32" in wanted else out / ".model_fp32.scratch.tflite"
    steps = {
        "fp32": lambda: convert_fp32(wrapper, input_size, fp32),
        "fp16": lambda: cast_fp16(fp32, out / FILE_NAMES["fp16"]),
        "int8": lambda: quantize_int8(fp32, calibration, out / FILE_NAMES["int8"]),
        "onnx": lambda: export_onnx(wrapper, input_size, heads, out / FILE_NAMES["onnx"]),
    }
    files: list[ExportedFile] = []
    try:
        if "fp32" not in wanted and ("fp16" in wanted or "int8" in wanted):
            _step("fp32 (intermediate)", progress, steps["fp32"])
        for fmt in wanted:
            _step(fmt, progress, steps[fmt])
            files.append(describe(out, fmt))
    finally:
        if fp32.name.endswith(".scratch.tflite"):
            fp32.unlink(missing_ok=True)
    manifest = Manifest(
        variant=variant,
        input_size=input_size,
        categories=categories,
        architecture=architecture or {},
        checkpoint=checkpoint,
        files=files,
        toolchain=toolchain_versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_manifest(manifest, out)
    return manifest


def describe(out: Path, fmt: str) -> ExportedFile:
    """The manifest entry of `out/FILE_NAMES[fmt]`, read back from the written file."""
    from blitzmask_deploy.export.iospec import onnx_io, tflite_io

    path = out / FILE_NAMES[fmt]
    inputs, outputs = onnx_io(path) if fmt == "onnx" else tflite_io(path)
    return ExportedFile(
        file=path.name,
        format="onnx" if fmt == "onnx" else "tflite",
        precision="fp32" if fmt == "onnx" else fmt,
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        inputs=inputs,
        outputs=outputs,
    )


def toolchain_versions() -> dict[str, str]:
    """Installed versions of the packages that produced (and run) the exported files."""
    versions = {}
    for name in _TOOLCHAIN:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _check_formats(formats: Sequence[str], calib: Path | None) -> None:
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise BadInput(
            f"unknown export format(s) {', '.join(unknown) or '(none)'} (choose from {', '.join(EXPORT_FORMATS)})"
        )
    if "int8" in formats and calib is None:
        raise BadInput("int8 export needs calibration images: pass --calib DATA (a dataset or image folder)")


def _architecture(model: nn.Module, config) -> dict:
    from blitzmask_deploy.modeling.complexity import count_macs, count_params

    arch = dict(config.to_dict())
    arch["params"] = int(count_params(model))
    arch["gmacs"] = round(count_macs(model, config.input_size) / 1e9, 4)
    return arch


def _step(what: str, progress: bool, fn: Callable[[], object]) -> None:
    if progress:
        print(f"export {what} …", file=sys.stderr, flush=True)
    start = time.perf_counter()
    fn()
    if progress:
        print(f"export {what}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
