"""Where int8 loses accuracy: per-op numeric error of the int8 file against the fp32 file, the PyTorch module each op
came from, its share of the model's MACs, and for the worst ops the host mask AP won back by keeping that op in
float (`blitzmask quant-debug`; written to `EXPORT_DIR/quant_debug.json`).
"""

from __future__ import annotations

import enum
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from blitzmask_deploy.core.artifacts import QUANT_DEBUG_NAME, ExportedFile, load_manifest, sha256_file, verify_file
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_writable
from blitzmask_deploy.core.jsonio import write_json_atomic
from blitzmask_deploy.export.tflite import SIGNATURE
from blitzmask_deploy.export.wrapper import HEADS, INPUT_NAME

CONV_LIKE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the ops whose MACs are counted


class _Figure(enum.Enum):
    """The per-tensor figures asked of ai-edge-quantizer's compare_model (value: the key in its results)."""

    SNR = "snr"
    COSINE = "cosine_similarity"
    MAX_ABS = "max_abs"
    MEAN_ABS = "mean_abs"


@dataclass
class OpError:
    """One quantised op of the int8 file: its numeric error, origin, MAC share and (worst ops) the AP kept back."""

    index: int  # the op's index in the fp32 file
    op: str
    module: str | None
    group: str  # backbone, neck or heads
    scope: str  # the quantizer's scope name (the op's output tensor names), the key of a per-op recipe
    snr_db: float
    cosine: float
    max_abs: float
    mean_abs: float
    mac_share: float
    ap_drop_kept_fp32: float | None = None  # host mask-AP drop vs the fp32 file with only this op kept in float


@dataclass
class QuantDebug:
    """The result of `blitzmask quant-debug`, as written to quant_debug.json."""

    file: str
    reference: str
    images: int
    dataset: str | None
    reference_mask_ap: float | None
    int8_mask_ap: float | None
    ops: list[OpError]

    def to_json(self) -> dict:
        """`{"file", "reference", "images", "dataset", "reference_mask_ap", "int8_mask_ap", "ops": [...]}`."""
        return {**asdict(self), "ops": [asdict(o) for o in self.ops]}

    def worst(self, count: int) -> list[OpError]:
        """The `count` ops with the lowest SNR."""
        return sorted(self.ops, key=lambda o: o.snr_db)[:count]


def op_errors(fp32: Path, int8: Path, images: Sequence[np.ndarray], *, threads: int = 2) -> list[OpError]:
    """Per-op error of `int8` against `fp32` on `images` ((1,S,S,3) float32 in [0,1]), for every op of the fp32
    file whose output the int8 file holds as an integer tensor; figures are means over the images."""
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils import validation_utils as vu

    from blitzmask_deploy.export.coverage import op_modules
    from blitzmask_deploy.export.quantize import op_scopes, quiet

    if not images:
        raise BadInput("quant-debug needs at least one image")
    figures = list(_Figure)
    functions = [vu.get_validation_func(vu.ValidationErrorMetric.SNR)]
    functions += [vu.get_validation_func(vu.ValidationErrorMetric.COSINE_SIMILARITY), _max_abs, _mean_abs]
    data = {SIGNATURE: [{INPUT_NAME: np.asarray(x, dtype=np.float32)} for x in images]}
    with quiet():
        compared = model_validator.compare_model(
            fp32.read_bytes(), int8.read_bytes(), data, figures, functions, num_threads=threads
        ).get_all_tensor_results()
    quantised = _integer_tensors(int8)
    types, outputs, macs = graph_ops(fp32)
    total = sum(macs) or 1
    ops = []
    for index, (scope, module) in enumerate(zip(op_scopes(fp32), op_modules(fp32), strict=True)):
        name = outputs[index]
        if name not in quantised or name not in compared:
            continue
        figure = compared[name]
        ops.append(
            OpError(
                index=index,
                op=types[index],
                module=module,
                group=module_group(module),
                scope=scope,
                snr_db=round(10 * math.log10(max(figure[_Figure.SNR.value], 1e-12)), 3),
                cosine=round(figure[_Figure.COSINE.value], 6),
                max_abs=figure[_Figure.MAX_ABS.value],
                mean_abs=figure[_Figure.MEAN_ABS.value],
                mac_share=macs[index] / total,
            )
        )
    return ops


def op_macs(path: Path) -> list[int]:
    """MACs of each op of the .tflite file (conv, depthwise conv, fully connected; 0 for other ops): output
    elements × kernel area × input channels / groups."""
    return graph_ops(path)[2]


def module_group(module: str | None) -> str:
    """'neck', 'heads' or 'backbone' (stem, input normalisation and backbone) for a module path."""
    first = (module or "").split(".")[0]
    return "neck" if first == "neck" else "heads" if first in HEADS else "backbone"


def file_ap(path: Path, dataset, *, max_images: int = 0, threads: int = 2) -> float:
    """Host mask AP of the .tflite file `path` on `dataset` (LiteRT, as `blitzmask validate` runs it)."""
    from blitzmask_deploy.export.iospec import tflite_io
    from blitzmask_deploy.inference.dataset import evaluate_run, predict_dataset
    from blitzmask_deploy.inference.runtimes import LiteRTRuntime

    inputs, outputs = tflite_io(path)
    spec = ExportedFile(
        file=path.name,
        format="tflite",
        precision="int8",
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        inputs=inputs,
        outputs=outputs,
    )
    runtime = LiteRTRuntime(path, spec, threads=threads)
    run = predict_dataset(runtime, dataset, max_images=max_images, progress=False)
    return float(evaluate_run(run, dataset)["mask_ap"])


def run_quant_debug(
    export_dir: Path, data: Path, *, images: int = 32, top: int = 5, threads: int = 2, progress: bool = True
) -> QuantDebug:
    """Quant-debug the export's int8 file against its fp32 file on `images` calibration-style images of `data`;
    with a val split in `data`, the `top` worst ops are re-quantised one at a time in float and their AP measured.
    Writes `export_dir/quant_debug.json`."""
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.export.calibration import calibration_images
    from blitzmask_deploy.export.quantize import calibrate, op_scopes, quantize_calibrated, with_headroom

    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    fp32, int8 = (_file(export_dir, manifest, precision) for precision in ("fp32", "int8"))
    check_writable(export_dir, "export directory")  # quant_debug.json goes there: known before the work
    inputs = calibration_images(Path(data), manifest.input_size, images, progress=progress)
    ops = op_errors(fp32, int8, inputs, threads=threads)
    dataset = CocoDataset.from_split(Path(data), "val") if _has_val(Path(data)) else None
    reference_ap = int8_ap = None
    if dataset is not None and top > 0:
        reference_ap = file_ap(fp32, dataset, threads=threads)
        int8_ap = file_ap(int8, dataset, threads=threads)
        # the int8 file's own recipe (weight scales, activation headroom, ops off full int8), plus one op in float
        entry = manifest.file("tflite-int8")
        qsvs = with_headroom(fp32, calibrate(fp32, inputs, threads=threads), entry.activation_headroom or 1.0)
        algorithm = manifest.calibration.algorithm if manifest.calibration else "min_max"
        scopes = op_scopes(fp32)
        recipe = {scopes[o.index]: o.precision for o in entry.op_precisions or []}
        with tempfile.TemporaryDirectory() as tmp:
            kept = Path(tmp) / "kept.tflite"
            for op in sorted(ops, key=lambda o: o.snr_db)[:top]:
                overrides = recipe | {op.scope: "fp32"}
                quantize_calibrated(fp32, qsvs, kept, overrides=overrides, algorithm=algorithm)
                op.ap_drop_kept_fp32 = reference_ap - file_ap(kept, dataset, threads=threads)
    result = QuantDebug(
        file=int8.name,
        reference=fp32.name,
        images=len(inputs),
        dataset=str(data) if dataset is not None else None,
        reference_mask_ap=reference_ap,
        int8_mask_ap=int8_ap,
        ops=ops,
    )
    write_json_atomic(export_dir / QUANT_DEBUG_NAME, result.to_json())
    return result


def _has_val(data: Path) -> bool:
    return (data / "annotations" / "instances_val.json").is_file()


def _file(export_dir: Path, manifest, precision: str) -> Path:
    """The export's .tflite file of `precision`, checked against the manifest and readable as a model."""
    from blitzmask_deploy.export.iospec import tflite_io

    for entry in manifest.files:
        if entry.format == "tflite" and entry.precision == precision:
            path = verify_file(export_dir, entry)
            try:
                tflite_io(path)
            except (RuntimeError, ValueError) as err:
                raise BadInput(f"{path}: cannot be read as a .tflite model ({' '.join(str(err).split())})") from None
            return path
    raise BadInput(
        f"{export_dir}: quant-debug needs the tflite-fp32 and tflite-int8 files (export --formats fp32,int8)"
    )


def graph_ops(path: Path) -> tuple[list[str], list[str], list[int]]:
    """Per op of the main subgraph: its type, its first output's name, its MACs."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types, outputs, macs = [], [], []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        out = graph.tensors[op.outputs[0]]
        types.append(kind)
        outputs.append(_decode(out.name))
        macs.append(_macs(kind, list(out.shape), list(graph.tensors[op.inputs[1]].shape)) if kind in CONV_LIKE else 0)
    return types, outputs, macs


def _macs(kind: str, out_shape: list[int], weight_shape: list[int]) -> int:
    """Output elements × kernel area × input channels per group, from the weight tensor's layout:
    conv [O, kh, kw, I/groups], depthwise [1, kh, kw, C·multiplier], fully connected [O, I]."""
    elements = int(np.prod(out_shape))
    if kind == "CONV_2D":
        return elements * weight_shape[1] * weight_shape[2] * weight_shape[3]
    if kind == "DEPTHWISE_CONV_2D":
        return elements * weight_shape[1] * weight_shape[2]
    return elements * weight_shape[-1]


def _integer_tensors(path: Path) -> set[str]:
    """Names of the int8/int16 tensors of a .tflite file (the activations it quantised)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_tensor_details()
    return {d["name"] for d in details if d["dtype"] in (np.int8, np.int16)}


def _decode(name: bytes | str) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _max_abs(target: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(target, np.float32) - np.asarray(reference, np.float32)), initial=0.0))


def _mean_abs(target: np.ndarray, reference: np.ndarray) -> float:
    diff = np.abs(np.asarray(target, np.float32) - np.asarray(reference, np.float32))
    return float(diff.mean()) if diff.size else 0.0
