"""LiteRT (.tflite) export: fp32 through litert-torch, fp16 by casting the fp32 file's weights to float16.

fp16 uses ai-edge-quantizer's float-casting algorithm on every conv / depthwise conv / fully-connected weight:
weights are stored as float16 with a DEQUANTIZE to float32 in front of each consumer, the layout the GPU delegate
folds into native fp16 kernels. Activations, inputs and outputs stay float32.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from blitzmask_deploy.export.wrapper import INPUT_NAME, sample_input

SIGNATURE = "serving_default"
_FP16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONV_2D_TRANSPOSE")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send converter chatter (litert-torch prints its progress on stdout) to stderr, keeping stdout for JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def convert_fp32(wrapper: nn.Module, input_size: int, out: Path) -> Path:
    """Convert an ExportWrapper to a float32 .tflite with NHWC input `images` and one output per head."""
    import litert_torch

    with stdout_to_stderr():
        edge = litert_torch.convert(wrapper.eval(), sample_kwargs={INPUT_NAME: sample_input(input_size)})
        edge.export(str(out))
    return out


def cast_fp16(fp32: Path, out: Path) -> Path:
    """Write a copy of the float32 .tflite `fp32` whose weights are float16 (float-casting recipe)."""
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(str(fp32))
    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
    )
    for op in _FP16_OPS:
        q.update_quantization_recipe(
            regex=".*",
            operation_name=qtyping.TFLOperationName(op),
            op_config=config,
            algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
        )
    with stdout_to_stderr():
        result = q.quantize(enable_progress_report=False)
    out.write_bytes(bytes(result.quantized_model))
    return out
