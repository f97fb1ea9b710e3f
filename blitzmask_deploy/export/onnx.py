"""ONNX export through torch.onnx.export, NHWC I/O, opset 18, weights inside the file.

The TorchScript-based exporter (`dynamo=False`) is used: for this conv-only graph it gives the same parity as the
dynamo exporter (|Δ| ~1e-7) in a fraction of the time (4 s vs 30 s for blitzmask-tiny on 2 cores).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from blitzmask_deploy.export.tflite import stdout_to_stderr
from blitzmask_deploy.export.wrapper import INPUT_NAME, sample_input

OPSET = 18


def export_onnx(wrapper: nn.Module, input_size: int, heads: list[str], out: Path) -> Path:
    """Export an ExportWrapper to `out` with input `images` (1,S,S,3) and outputs named after `heads`."""
    import torch

    with stdout_to_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper.eval(),
            (sample_input(input_size),),
            str(out),
            input_names=[INPUT_NAME],
            output_names=list(heads),
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
        )
    return out
