"""Delegate and integer coverage of .tflite files: every op, whether the GPU delegate takes it, whether it runs
in integer arithmetic, and the PyTorch module it came from (from the converter's tensor names).

GPU verdicts combine two sources: the ai-edge-litert model analyzer (`gpu_compatibility=True`; its per-op
"GPU COMPATIBILITY WARNING" lines) and the GPU delegate's own op rules (TFLite's gpu_compatibility.cc, restated in
`_GPU_OPS` / `_gpu_problem`), because the analyzer shipped in ai-edge-litert 2.x accepts ops the delegate rejects
(e.g. TOPK_V2). An op counts as GPU-compatible only when neither source objects.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from blitzmask_deploy.core.artifacts import ExportedFile, load_manifest, verify_file
from blitzmask_deploy.core.errors import BadInput

_GPU_OPS = frozenset(  # op types TFLite's GPU delegate implements (gpu_compatibility.cc)
    """ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY
    DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR
    FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL
    LOG LOGICAL_AND LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD
    PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
    SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV""".split()  # noqa: SIM905
)
_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})
_OP_LINE = re.compile(r"^\s*Op#(\d+)\s+(\w+)")
_GPU_WARNING = "GPU COMPATIBILITY WARNING"


@dataclass
class OpCoverage:
    """One operator of the main subgraph."""

    index: int
    op: str
    gpu_compatible: bool
    integer: bool
    module: str | None
    gpu_reason: str | None = None
    int16: bool = False  # int16 activations (a16w8 in a mixed-precision int8 file)


@dataclass
class FileCoverage:
    """All ops of one .tflite file plus the two headline figures."""

    name: str
    file: str
    ops: list[OpCoverage]

    @property
    def gpu_compatible_pct(self) -> float:
        """Share of ops the GPU delegate accepts, in percent."""
        return 100.0 * sum(o.gpu_compatible for o in self.ops) / len(self.ops) if self.ops else 100.0

    @property
    def int16_ops(self) -> int:
        """Ops with int16 activations: on the integer path of QNN HTP and LiteRT CPU, not of int8-only NPUs."""
        return sum(o.int16 for o in self.ops)

    @property
    def float_ops(self) -> int:
        """Ops with a float input or output (what an int8-only DSP/NPU cannot run)."""
        return sum(not o.integer for o in self.ops)

    def to_json(self) -> dict:
        """`{"name", "file", "ops": [...], "gpu_compatible_pct", "float_ops"}`."""
        return {
            "name": self.name,
            "file": self.file,
            "ops": [asdict(o) for o in self.ops],
            "gpu_compatible_pct": round(self.gpu_compatible_pct, 2),
            "float_ops": self.float_ops,
            "int16_ops": self.int16_ops,
        }


def analyze_tflite(path: Path, name: str | None = None) -> FileCoverage:
    """Coverage of the main subgraph of the .tflite file at `path`."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
        graph = model.subgraphs[0]
    except Exception as err:  # the flatbuffer reader raises assorted errors on truncated files
        raise BadInput(f"{path}: not a readable .tflite model ({type(err).__name__})") from None
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    analyzer = _analyzer_warnings(path)
    ops = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        op_name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        inputs = [graph.tensors[i] for i in op.inputs if i >= 0]
        outputs = [graph.tensors[i] for i in op.outputs]
        types = [type_names[t.type] for t in (*inputs, *outputs)]
        reason = analyzer.get(index) or _gpu_problem(op_name, inputs, type_names)
        ops.append(
            OpCoverage(
                index=index,
                op=op_name,
                gpu_compatible=reason is None,
                integer=not any(t in _FLOAT_TYPES for t in types),
                module=_op_module(model, outputs, inputs),
                gpu_reason=reason,
                int16="INT16" in types,
            )
        )
    return FileCoverage(name=name or path.stem, file=path.name, ops=ops)


def coverage_report(export_dir: Path) -> list[FileCoverage]:
    """Coverage of every .tflite file listed in `export_dir/manifest.json` (sha256-checked)."""
    manifest = load_manifest(export_dir)
    entries: list[ExportedFile] = [f for f in manifest.files if f.format == "tflite"]
    if not entries:
        raise BadInput(f"{export_dir}: the manifest lists no .tflite files")
    return [analyze_tflite(verify_file(export_dir, f), f.name) for f in entries]


def module_path(tensor_name: str) -> str | None:
    """PyTorch module path from a converter tensor name, e.g. '…ExportWrapper/….BlitzMask_model/….Conv2d_stem;'
    → 'stem'. Fused ops carry several locations ('a;;b'): the first, the module whose output the op produces, is
    kept. '(root)' for ops of BlitzMask.forward itself; None when the name carries no module."""
    for part in tensor_name.split(";"):
        if "/" not in part:
            continue
        attrs = []
        for segment in part.split("/")[1:]:
            cls = segment.rpartition(".")[2]
            if "_" in cls:
                attrs.append(cls.split("_", 1)[1])
        if attrs and attrs[0] == "model":  # ExportWrapper.model: paths are relative to the BlitzMask module
            return ".".join(attrs[1:]) or "(root)"
    return None


def op_modules(path: Path) -> list[str | None]:
    """The PyTorch module of every op of the main subgraph of the .tflite file `path`, by op index."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    graph = model.subgraphs[0]
    return [
        _op_module(model, [graph.tensors[i] for i in op.outputs], [graph.tensors[i] for i in op.inputs if i >= 0])
        for op in graph.operators
    ]


def _op_module(model, outputs: list, inputs: list) -> str | None:
    """The module of an op: from its output's name, else (graph outputs are renamed) from its weights' names."""
    constants = [t for t in inputs if model.buffers[t.buffer].data is not None]
    for tensor in (*outputs, *constants, *inputs):
        if path := module_path(_decode(tensor.name)):
            return path
    return None


def _decode(name: bytes | str) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _gpu_problem(op: str, inputs: list, type_names: dict[int, str]) -> str | None:
    """Why the GPU delegate would reject this op, or None (op-level rules of the delegate)."""
    if op not in _GPU_OPS:
        return f"not supported op {op}"
    shape = list(inputs[0].shape) if inputs and inputs[0].shape is not None else []
    if op == "DEQUANTIZE" and inputs and type_names[inputs[0].type] == "INT16":
        return "int16 dequantization"
    if op in ("SLICE", "STRIDED_SLICE") and len(shape) not in (3, 4):
        return f"{op} supports 3-D or 4-D tensors only"
    if op in ("PAD", "PADV2", "MIRROR_PAD") and len(shape) not in (3, 4):
        return f"{op} supports 3-D or 4-D tensors only"
    return None


def _analyzer_warnings(path: Path) -> dict[int, str]:
    """Per-op GPU warnings from the ai-edge-litert model analyzer, by op index (main subgraph)."""
    from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer

    warnings: dict[int, str] = {}
    current = None
    for line in analyzer.ModelAnalyzer(str(path), True, True).splitlines():
        if line.startswith("Subgraph#") and not line.startswith("Subgraph#0"):
            break
        if match := _OP_LINE.match(line):
            current = int(match.group(1))
        elif _GPU_WARNING in line and current is not None:
            warnings[current] = line.split(":", 1)[-1].strip()
    return warnings
