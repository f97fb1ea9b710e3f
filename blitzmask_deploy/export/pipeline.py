"""`export_checkpoint`: a checkpoint → `model_fp32.tflite`, `model_fp16.tflite`, `model_int8.tflite`, `model.onnx`
and `manifest.json`, each file described by what is read back from it (sha256, bytes, exact I/O spec).

An export is written into a hidden sibling folder and swapped in whole once every file and the manifest are there,
so an interrupted export leaves the earlier export at OUT (or nothing), never a mix of old and new files; the
earlier export's validation.json goes with it (it describes other files). OUT must be new or hold only files an
export writes: a folder with anything else in it is refused rather than replaced.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path

from torch import nn

from blitzmask_deploy.core.artifacts import (
    EXPORT_FORMATS,
    FILE_NAMES,
    MANIFEST_NAME,
    QUANT_DEBUG_NAME,
    VALIDATION_NAME,
    CalibrationRecord,
    CheckpointRef,
    ExportedFile,
    Manifest,
    sha256_file,
    write_manifest,
)
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_writable, replace_folder, sibling

_TOOLCHAIN = ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "onnx", "onnxruntime", "blitzmask-deploy")
_SCRATCH_FP32 = ".model_fp32.scratch.tflite"  # the fp32 intermediate of fp16 and int8 when fp32 is not wanted
_EXPORT_NAMES = frozenset(  # an export's files, and what describes them
    {MANIFEST_NAME, VALIDATION_NAME, QUANT_DEBUG_NAME, _SCRATCH_FP32, *FILE_NAMES.values()}
)


def export_checkpoint(
    ckpt: Path,
    out: Path,
    *,
    formats: Sequence[str] = EXPORT_FORMATS,
    calib: Path | None = None,
    calib_images: int = 128,
    calib_algorithm: str = "min_max",
    calib_headroom: float | None = None,
    int8_budget: float | None = None,
    progress: bool = True,
) -> Manifest:
    """Export checkpoint `ckpt` to `out` in `formats`; int8 is calibrated on `calib_images` images of `calib`, its
    weight scales chosen by `calib_algorithm`, its activation ranges widened by `calib_headroom` (1 when None and
    no budget) and, with `int8_budget` (AP points), mixed precision keeps its host AP drop on `calib`'s val split
    within it (trying each of quantize.HEADROOMS when `calib_headroom` is None)."""
    from blitzmask_deploy.core.checkpoints import read_checkpoint
    from blitzmask_deploy.modeling.registry import model_from_checkpoint

    _check_formats(formats, calib, int8_budget, calib_algorithm, calib_headroom)
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
        calib_algorithm=calib_algorithm,
        calib_headroom=calib_headroom,
        int8_budget=int8_budget,
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
    calib_algorithm: str = "min_max",
    calib_headroom: float | None = None,
    int8_budget: float | None = None,
    progress: bool = True,
) -> Manifest:
    """Export an in-memory model (forward → dict of NCHW head tensors) with `out/manifest.json`; `out` is replaced
    only once everything is written."""
    from blitzmask_deploy.export.calibration import calibration_images

    _check_formats(formats, calib, int8_budget, calib_algorithm, calib_headroom)
    target = Path(out).resolve()
    _check_out(target)
    check_writable(target, "--out", beside=True)
    wanted = [f for f in EXPORT_FORMATS if f in formats]
    calibration = calibration_images(calib, input_size, calib_images, progress=progress) if "int8" in wanted else []
    ap_drop = _ap_drop_on(model, calib, input_size, categories) if int8_budget is not None else None
    int8 = partial(
        _quantize,
        calibration=calibration,
        algorithm=calib_algorithm,
        headroom=calib_headroom,
        budget=int8_budget,
        ap_drop=ap_drop,
    )
    record = _calibration_record(calib, calibration, calib_algorithm, int8_budget) if "int8" in wanted else None
    staging = sibling(target, "partial")
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir()
    try:
        manifest = Manifest(
            variant=variant,
            input_size=input_size,
            categories=categories,
            architecture=architecture or {},
            checkpoint=checkpoint,
            files=_write_files(model, staging, input_size, wanted, int8, progress),
            toolchain=toolchain_versions(),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            calibration=record,
        )
        write_manifest(manifest, staging)
        replace_folder(target, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write_files(
    model: nn.Module,
    folder: Path,
    input_size: int,
    wanted: list[str],
    int8: Callable[[Path, Path], dict],
    progress: bool,
) -> list[ExportedFile]:
    """Write each format of `wanted` into `folder` (fp32 also as the intermediate of fp16 and int8); their entries.
    `int8(fp32, out)` writes the int8 file and returns its extra manifest fields."""
    from blitzmask_deploy.export.onnx import export_onnx
    from blitzmask_deploy.export.tflite import cast_fp16, convert_fp32
    from blitzmask_deploy.export.wrapper import ExportWrapper, fuse_conv_bn, head_names

    wrapper = ExportWrapper(fuse_conv_bn(model))
    heads = head_names(model, input_size)
    fp32 = folder / (FILE_NAMES["fp32"] if "fp32" in wanted else _SCRATCH_FP32)
    steps = {
        "fp32": lambda: convert_fp32(wrapper, input_size, fp32),
        "fp16": lambda: cast_fp16(fp32, folder / FILE_NAMES["fp16"]),
        "int8": lambda: extras.update(int8(fp32, folder / FILE_NAMES["int8"])),
        "onnx": lambda: export_onnx(wrapper, input_size, heads, folder / FILE_NAMES["onnx"]),
    }
    extras: dict = {}
    if "fp32" not in wanted and ("fp16" in wanted or "int8" in wanted):
        _step("fp32 (intermediate)", progress, steps["fp32"])
    files = []
    for fmt in wanted:
        _step(fmt, progress, steps[fmt])
        files.append(describe(folder, fmt).model_copy(update=extras if fmt == "int8" else {}))
    if "fp32" not in wanted:
        fp32.unlink(missing_ok=True)
    return files


def _check_out(out: Path) -> None:
    """BadInput unless `out` is new or a folder holding only what an export writes (it will be replaced whole)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BadInput(f"{out} exists and is not a folder: choose another --out")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _EXPORT_NAMES)
    if foreign:
        listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise BadInput(f"{out} holds files an export does not write ({listed}): choose a new or empty folder for --out")


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


def _quantize(
    fp32: Path,
    out: Path,
    *,
    calibration: list,
    algorithm: str,
    headroom: float | None,
    budget: float | None,
    ap_drop: Callable[[Path], float] | None,
) -> dict:
    """Full int8 (no budget) or mixed precision within `budget` AP points, weight scales chosen by `algorithm`,
    activation ranges widened by `headroom`; the int8 file's extra manifest fields."""
    from blitzmask_deploy.export.mixed_precision import op_precisions, quantize_on_budget
    from blitzmask_deploy.export.quantize import quantize_int8

    if budget is None or ap_drop is None:
        quantize_int8(fp32, calibration, out, algorithm=algorithm, headroom=headroom or 1.0)
        return {"op_precisions": [], "int8_mac_share": 1.0, "activation_headroom": headroom or 1.0}
    result = quantize_on_budget(
        fp32, calibration, out, budget=budget / 100, ap_drop=ap_drop, algorithm=algorithm, headroom=headroom
    )
    ops, share = op_precisions(fp32, result.overrides)
    return {
        "op_precisions": ops,
        "int8_mac_share": share,
        "host_ap_drop": round(result.ap_drop, 6),
        "activation_headroom": result.headroom,
    }


def _ap_drop_on(model: nn.Module, data: Path, input_size: int, categories: list[dict]) -> Callable[[Path], float]:
    """`file → mask-AP drop` of a .tflite file against `model`, both on the host, on `data`'s val split."""
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.export.quant_debug import file_ap
    from blitzmask_deploy.inference.dataset import evaluate_run, predict_dataset
    from blitzmask_deploy.inference.runtimes import TorchRuntime

    dataset = CocoDataset.from_split(data, "val")
    if [c["id"] for c in categories] != list(dataset.cat_index_to_id):
        raise BadInput(f"{data}: categories differ from the model's ({len(categories)} classes)")
    run = predict_dataset(TorchRuntime(model, input_size), dataset, progress=False)
    reference = float(evaluate_run(run, dataset)["mask_ap"])
    return lambda path: reference - file_ap(path, dataset)


def _calibration_record(
    calib: Path | None, calibration: list, algorithm: str, budget: float | None
) -> CalibrationRecord:
    source = Path(calib or "")
    split = source / "images" / "train"
    return CalibrationRecord(
        source=str(split if split.is_dir() else source),
        images=len(calibration),
        algorithm=algorithm,
        int8_budget=budget,
    )


def _check_formats(
    formats: Sequence[str],
    calib: Path | None,
    int8_budget: float | None = None,
    calib_algorithm: str = "min_max",
    calib_headroom: float | None = None,
) -> None:
    from blitzmask_deploy.export.quantize import check_algorithm, check_headroom

    check_algorithm(calib_algorithm)
    if calib_headroom is not None:
        check_headroom(calib_headroom)
        if "int8" not in formats:
            raise BadInput("--calib-headroom applies to the int8 file: add int8 to --formats")
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise BadInput(
            f"unknown export format(s) {', '.join(unknown) or '(none)'} (choose from {', '.join(EXPORT_FORMATS)})"
        )
    if "int8" in formats and calib is None:
        raise BadInput("int8 export needs calibration images: pass --calib DATA (a dataset or image folder)")
    if int8_budget is None:
        return
    if not math.isfinite(int8_budget) or int8_budget < 0:
        raise BadInput(f"--int8-budget must be a non-negative number of AP points, got {int8_budget}")
    if "int8" not in formats:
        raise BadInput("--int8-budget applies to the int8 file: add int8 to --formats")
    if calib is None or not (Path(calib) / "annotations" / "instances_val.json").is_file():
        raise BadInput("--int8-budget needs --calib to be a dataset with a val split (annotations/instances_val.json)")


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
