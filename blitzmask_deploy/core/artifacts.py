"""The export manifest: the hand-off between export, validate, bench and report (DESIGN.md §4).

`EXPORT_DIR/manifest.json` lists every exported file with its format, precision, sha256 and size, and the
exact input/output tensor spec (names, shapes, NHWC layout, dtypes, int8 scale/zero-point).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.jsonio import read_json, write_json_atomic

MANIFEST_NAME = "manifest.json"
VALIDATION_NAME = "validation.json"  # written beside the manifest by `blitzmask validate EXPORT_DIR`
QUANT_DEBUG_NAME = "quant_debug.json"  # written beside the manifest by `blitzmask quant-debug EXPORT_DIR`
SCHEMA_VERSION = 1
MAX_INPUT_SIZE = 4096  # pixels: a larger square model input is a typo (one such image already takes 200 MB)
EXPORT_FORMATS = ("fp32", "fp16", "int8", "onnx")  # what `blitzmask export --formats` takes, in export order
FILE_NAMES = {  # the file each format is written to inside an export directory
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "int8": "model_int8.tflite",
    "onnx": "model.onnx",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuantParams(_Strict):
    """Affine quantisation of one tensor: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


class TensorSpec(_Strict):
    """One input or output tensor of an exported file."""

    name: str
    tensor: str | None = None  # the tensor's own name inside the file, when it differs from `name` (the head)
    shape: list[Annotated[StrictInt, Field(ge=1)]] = Field(min_length=1)
    dtype: Literal["float32", "float16", "int8", "uint8", "int32", "int64"]
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    quant: QuantParams | None = None


class OpPrecision(_Strict):
    """One op of an int8 file that is not in full int8 (mixed precision on an AP budget)."""

    index: int  # the op's index in the fp32 file's graph
    op: str
    module: str | None
    precision: Literal["a16w8", "fp32"]  # int16 activations with int8 weights, or float


class ExportedFile(_Strict):
    """One exported model file, relative to the export directory."""

    file: str
    format: Literal["tflite", "onnx"]
    precision: Literal["fp32", "fp16", "int8"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: StrictInt = Field(ge=0)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    op_precisions: list[OpPrecision] | None = None  # int8 files: the ops not in full int8 (empty: all of them)
    int8_mac_share: float | None = None  # int8 files: share of the model's MACs in full int8
    host_ap_drop: float | None = None  # int8 files on an AP budget: mask-AP drop vs the checkpoint (fraction)
    activation_headroom: float | None = None  # int8 files: factor every calibrated activation range was widened by

    @field_validator("file")
    @classmethod
    def _inside_the_folder(cls, file: str) -> str:
        """A plain file name: an exported file lies in the export directory itself, never elsewhere."""
        if file in ("", ".", "..") or "/" in file or "\\" in file or "\0" in file:
            raise ValueError(f"{file!r} is not the name of a file inside the export directory")
        return file

    @property
    def name(self) -> str:
        """Short id used in tables and result stores, e.g. 'tflite-int8'."""
        return f"{self.format}-{self.precision}"


class CheckpointRef(_Strict):
    """The checkpoint the export came from."""

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CalibrationRecord(_Strict):
    """How the int8 file was calibrated."""

    source: str  # a dataset's train split or a folder of images
    images: int  # images actually used
    algorithm: str = "min_max"  # how the int8 weight scales were chosen (export/quantize.py, CALIB_ALGORITHMS)
    int8_budget: float | None = None  # AP points the int8 file may lose on the dataset's val split, when given


class Manifest(_Strict):
    """Everything downstream needs to know about an export directory."""

    schema_version: StrictInt = SCHEMA_VERSION
    variant: str
    input_size: StrictInt = Field(ge=32, le=MAX_INPUT_SIZE, multiple_of=32)
    categories: list[dict]
    architecture: dict = {}
    checkpoint: CheckpointRef
    files: list[ExportedFile]
    toolchain: dict[str, str]
    created: str
    calibration: CalibrationRecord | None = None

    def file(self, name: str) -> ExportedFile:
        """The file whose `name` (e.g. 'tflite-fp16') or file name matches."""
        for f in self.files:
            if name in (f.name, f.file):
                return f
        raise BadInput(f"no exported file '{name}' (have {', '.join(f.name for f in self.files)})")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(export_dir: Path) -> Path:
    """`export_dir/manifest.json`, or the path itself if it already names a manifest file."""
    return export_dir if export_dir.is_file() else export_dir / MANIFEST_NAME


def load_manifest(export_dir: Path) -> Manifest:
    """Read and validate a manifest; BadInput when missing, not JSON or not a BlitzMask manifest."""
    path = manifest_path(export_dir)
    if not path.exists():
        raise BadInput(f"no {MANIFEST_NAME} in {export_dir} (is it an export directory from 'blitzmask export'?)")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise BadInput(f"{path} is not a BlitzMask manifest (expected a JSON object)")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise BadInput(f"{path}: unsupported manifest schema_version {raw.get('schema_version')!r}")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"{path}: invalid manifest at '{where}': {first['msg']}") from None


def write_manifest(manifest: Manifest, export_dir: Path) -> Path:
    """Write `manifest.json` atomically into `export_dir`."""
    return write_json_atomic(export_dir / MANIFEST_NAME, manifest.model_dump())


def verify_file(export_dir: Path, entry: ExportedFile) -> Path:
    """Path of an exported file after checking it exists and its sha256 matches the manifest."""
    path = export_dir / entry.file
    if not path.exists():
        raise BadInput(f"{path} is listed in the manifest but missing")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise BadInput(f"{path}: sha256 {actual[:12]}… does not match the manifest ({entry.sha256[:12]}…)")
    return path
