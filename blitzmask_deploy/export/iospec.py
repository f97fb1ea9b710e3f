"""Read an exported file's input/output tensor spec back from the file itself (not from what we meant to write).

`TensorSpec.name` is the signature key (`images` for the input, the head name for each output) and
`TensorSpec.tensor` the tensor's own name in the file where it differs, listed in the file's own I/O order;
int8 tensors carry their scale and zero point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blitzmask_deploy.core.artifacts import QuantParams, TensorSpec
from blitzmask_deploy.export.tflite import SIGNATURE

_ONNX_DTYPES = {1: "float32", 10: "float16", 3: "int8", 2: "uint8", 6: "int32", 7: "int64"}


def _spec(name: str, tensor: str, shape: list[int], dtype: str, quant: QuantParams | None = None) -> TensorSpec:
    return TensorSpec(
        name=name, tensor=tensor if tensor != name else None, shape=shape, dtype=dtype, layout="NHWC", quant=quant
    )


def tflite_io(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a .tflite file, named by its `serving_default` signature keys."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    runner = it.get_signature_runner(SIGNATURE)
    key_of = {d["index"]: k for k, d in runner.get_input_details().items()}
    key_of |= {d["index"]: k for k, d in runner.get_output_details().items()}

    def convert(details: list[dict]) -> list[TensorSpec]:
        specs = []
        for d in details:
            dtype = np.dtype(d["dtype"]).name
            scale, zero = d["quantization"]
            quant = QuantParams(scale=float(scale), zero_point=int(zero)) if dtype in ("int8", "uint8") else None
            shape = [int(s) for s in d["shape"]]
            specs.append(_spec(key_of.get(d["index"], d["name"]), d["name"], shape, dtype, quant))
        return specs

    return convert(it.get_input_details()), convert(it.get_output_details())


def onnx_io(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an .onnx graph (static shapes)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def convert(values) -> list[TensorSpec]:
        specs = []
        for v in values:
            t = v.type.tensor_type
            shape = [int(d.dim_value) for d in t.shape.dim]
            if t.elem_type not in _ONNX_DTYPES:
                raise ValueError(f"{path}: tensor {v.name} has unsupported ONNX element type {t.elem_type}")
            specs.append(_spec(v.name, v.name, shape, _ONNX_DTYPES[t.elem_type]))
        return specs

    return convert(graph.input), convert(graph.output)
