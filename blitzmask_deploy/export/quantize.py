"""Full-integer int8 .tflite: ai-edge-quantizer static int8 weights and activations, int8 input and outputs.

Activations are calibrated on real images (see calibration.py); the input keeps its contract range [0, 1], i.e.
scale 1/255 and zero point -128, so a uint8 pixel p is fed as p - 128 with no rounding. The quantizer already
gives integer I/O for this graph; if a toolchain version leaves float I/O (QUANTIZE after the input, DEQUANTIZE
before outputs), the boundary ops are folded away with LiteRT's modify_model_interface so that DSPs/NPUs get an
all-integer graph.
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.export.tflite import SIGNATURE, stdout_to_stderr
from blitzmask_deploy.export.wrapper import INPUT_NAME

_TFL_INT8 = 9  # tflite::TensorType_INT8
MIN_ACTIVATION_RANGE = 1e-2
OP_PRECISIONS = ("a16w8", "fp32")  # what an op may keep instead of full int8, cheapest first
CALIB_ALGORITHMS = ("min_max", "mse")  # how int8 scales are chosen from the calibration statistics
_MSE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the ops ai-edge-quantizer's MSE algorithm takes
HEADROOMS = (1.0, 1.25, 1.5, 2.0)  # activation-range factors the AP-budget search tries, in this order
MAX_HEADROOM = 16.0


def quantize_int8(
    fp32: Path,
    calibration: Iterable[np.ndarray],
    out: Path,
    *,
    threads: int = 2,
    algorithm: str = "min_max",
    headroom: float = 1.0,
) -> Path:
    """Quantize the float32 .tflite `fp32` to full int8 using `calibration` images ((1,S,S,3) float32 in [0,1]),
    every activation range widened by `headroom` (see with_headroom)."""
    stats = with_headroom(fp32, calibrate(fp32, calibration, threads=threads), headroom)
    return quantize_calibrated(fp32, stats, out, algorithm=algorithm)


def calibrate(fp32: Path, calibration: Iterable[np.ndarray], *, threads: int = 2) -> dict:
    """Activation statistics (min/max per tensor) of `fp32` on `calibration`, ready for quantize_calibrated."""
    from ai_edge_quantizer import calibrator, quantizer, recipe

    samples = [{INPUT_NAME: np.asarray(x, dtype=np.float32)} for x in calibration]
    if not samples:
        raise BadInput("int8 export needs at least one calibration image")
    q = quantizer.Quantizer(str(fp32), recipe.static_wi8_ai8())
    with quiet():
        # profiler-based calibration: the same min/max as preserving all tensors, ~3× faster (b0 at 320)
        mode = calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED
        qsvs = q.calibrate({SIGNATURE: samples}, num_threads=threads, mode=mode)
        _widen_degenerate_ranges(qsvs)
        for name in _input_names(fp32):  # the input range is [0, 1] by contract, not what calibration saw
            qsvs[name] = {"min": np.zeros_like(qsvs[name]["min"]), "max": np.ones_like(qsvs[name]["max"])}
    return qsvs


def with_headroom(fp32: Path, qsvs: dict, factor: float) -> dict:
    """The statistics `qsvs` with every activation range of `fp32` scaled by `factor` about zero (the graph input
    keeps its contract range [0, 1], a sigmoid its fixed int8 range); `qsvs` itself when `factor` is 1.

    Calibrated min/max are the extremes of a few images: values of other images beyond them are clipped. Wider
    ranges clip less at a coarser step; which trade-off keeps more AP depends on the model, so the AP-budget search
    measures HEADROOMS in turn.
    """
    check_headroom(factor)
    if factor == 1.0:
        return qsvs
    inputs = set(_input_names(fp32))
    wider = copy.deepcopy(qsvs)
    for name, stats in wider.items():
        if name not in inputs and "min" in stats and "max" in stats:
            stats["min"], stats["max"] = stats["min"] * factor, stats["max"] * factor
    return wider


def quantize_calibrated(
    fp32: Path,
    qsvs: dict,
    out: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    algorithm: str = "min_max",
) -> Path:
    """Write `fp32` quantized with the statistics `qsvs` to `out`: full int8, except each op scope of `overrides`
    (see op_scopes), kept at its precision ('a16w8': int16 activations and int8 weights; 'fp32': float).

    `algorithm` picks the weight scales: 'min_max' (each channel's range) or 'mse' (ai-edge-quantizer's MSE scale,
    0.054 × the channel's RMS, clipping weights beyond ~6.9 RMS; it exists for conv, depthwise and fully-connected
    ops only, the others keep min/max).
    Activation ranges are the calibrated min/max with either."""
    from ai_edge_quantizer import quantizer, recipe

    check_algorithm(algorithm)
    q = quantizer.Quantizer(str(fp32), recipe.static_wi8_ai8())
    if algorithm == "mse":
        _use_mse(q, ".*", activation_bits=8)
    for scope, precision in (overrides or {}).items():
        _override(q, scope, precision, algorithm)
    with quiet():
        result = q.quantize(copy.deepcopy(qsvs), enable_progress_report=False)
    out.write_bytes(bytes(result.quantized_model))
    if not _integer_io(out):
        _make_io_integer(out)
    if not _integer_io(out):
        raise RuntimeError(f"{out}: input/output tensors are still float after quantization")
    if problem := reference_kernel_problem(out):
        message = f"{out.name} runs with XNNPACK but LiteRT's reference int8 kernels reject it: {problem}"
        warnings.warn(message, stacklevel=2)
    return out


def op_scopes(path: Path) -> list[str]:
    """The quantizer's scope name of every op of the main subgraph of the .tflite file `path`, by op index."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    graph = fb.read_model(str(path)).subgraphs[0]
    return [fb.get_op_scope(op, graph.tensors) for op in graph.operators]


def check_algorithm(algorithm: str) -> None:
    """BadInput unless `algorithm` is one of CALIB_ALGORITHMS."""
    if algorithm not in CALIB_ALGORITHMS:
        raise BadInput(f"unknown calibration algorithm {algorithm!r} (choose from {', '.join(CALIB_ALGORITHMS)})")


def check_headroom(factor: float) -> None:
    """BadInput unless `factor` is a finite activation-range factor in [1, MAX_HEADROOM]."""
    if not 1.0 <= factor <= MAX_HEADROOM:  # also false for nan
        raise BadInput(f"--calib-headroom must be a number from 1 to {MAX_HEADROOM:g}, got {factor}")


def _use_mse(q, regex: str, *, activation_bits: int) -> None:
    """MSE weight scales for the conv, depthwise and fully-connected ops matching `regex` (later configs win)."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    for op in _MSE_OPS:
        name = qtyping.TFLOperationName(op)
        mse = algorithm_manager.AlgorithmName.MSE
        q.add_static_config(regex, name, activation_num_bits=activation_bits, weight_num_bits=8, algorithm_key=mse)


def _override(q, scope: str, precision: str, algorithm: str = "min_max") -> None:
    """Give the op whose scope is exactly `scope` the per-op config of `precision` (weights scaled by `algorithm`)."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    regex = f"^{re.escape(scope)}$"
    everything = qtyping.TFLOperationName.ALL_SUPPORTED
    if precision == "a16w8":
        q.add_static_config(regex, everything, activation_num_bits=16, weight_num_bits=8)
        if algorithm == "mse":
            _use_mse(q, regex, activation_bits=16)
    elif precision == "fp32":
        q.update_quantization_recipe(regex, everything, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    else:
        raise ValueError(f"unknown op precision {precision!r} (choose from {', '.join(OP_PRECISIONS)})")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The quantizer's prints to stderr; its interpreter's warning that preserving all tensors is for debugging
    (that is what calibration needs) silenced."""
    with stdout_to_stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*", category=UserWarning)
        yield


def _widen_degenerate_ranges(qsvs: dict) -> None:
    """Give every calibrated activation a range of at least MIN_ACTIVATION_RANGE.

    A tensor that was (almost) constant during calibration — dead ReLUs of an untrained model, a 2×2 map at
    stride 32 — gets a scale near 1e-8; the int32 bias scale of the next conv (input scale × weight scale) then
    overflows and LiteRT's reference kernels refuse the model. Real activations span ranges far above the floor.
    """
    for stats in qsvs.values():
        if "min" in stats and "max" in stats:
            stats["max"] = np.maximum(stats["max"], stats["min"] + MIN_ACTIVATION_RANGE)


def reference_kernel_problem(path: Path) -> str | None:
    """Why LiteRT's built-in (non-XNNPACK) kernels cannot prepare the model, or None if they can.

    Their checks are stricter than XNNPACK's (e.g. a per-channel bias that overflows int32 when an int8 weight
    scale is tiny); a phone without XNNPACK, or a delegate falling back to them, would fail to load the file.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        Interpreter(model_path=str(path), experimental_op_resolver_type=resolver).allocate_tensors()
    except RuntimeError as err:
        return str(err).strip().splitlines()[0]
    return None


def _input_names(path: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return [d["name"] for d in Interpreter(model_path=str(path)).get_input_details()]


def _integer_io(path: Path) -> bool:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    details = it.get_input_details() + it.get_output_details()
    return all(d["dtype"] == np.int8 for d in details)


def _make_io_integer(path: Path) -> None:
    from ai_edge_litert import _pywrap_modify_model_interface as mmi

    tmp = path.with_suffix(".io.tflite")
    status = mmi.modify_model_interface(str(path), str(tmp), _TFL_INT8, _TFL_INT8)
    if status != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{path}: could not make input/output int8 (modify_model_interface status {status})")
    tmp.replace(path)
