"""One predict API over runtimes: each runtime maps a batch of NHWC float inputs to NHWC head tensors.

Every runtime takes `images` of shape (N, S, S, 3), float32 in [0, 1] (see data/transforms.py), and returns
a dict keyed by head name (`heatmap`, `coefficients`, `spanning_set`, optionally `box`) of float32 arrays in
NHWC layout, so that decode.py never needs to know which runtime produced them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from blitzmask_deploy.core.artifacts import ExportedFile, TensorSpec, verify_file
from blitzmask_deploy.core.errors import BadInput


class Runtime(Protocol):
    """Anything that maps (N,S,S,3) float32 images to a dict of NHWC float32 head tensors."""

    name: str
    input_size: int

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run inference on a batch."""
        ...


class TorchRuntime:
    """PyTorch eager inference of a BlitzMask module (NCHW inside, NHWC at the boundary)."""

    name = "torch"

    def __init__(self, model: Any, input_size: int, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.input_size = input_size

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            out = self.model(x)
        return {k: v.permute(0, 2, 3, 1).contiguous().numpy() for k, v in out.items()}


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A float tensor in the dtype of `spec` (int8 with its scale and zero point, rounded and clipped)."""
    if spec.quant is None:
        return x.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    q = np.round(x / spec.quant.scale) + spec.quant.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A tensor in the dtype of `spec` back to float32 (int8 through its scale and zero point)."""
    if spec.quant is None:
        return q.astype(np.float32)
    return ((q.astype(np.float32) - spec.quant.zero_point) * spec.quant.scale).astype(np.float32)


class LiteRTRuntime:
    """A .tflite file on the host LiteRT interpreter (XNNPACK unless `xnnpack` is False, `threads` threads); int8 I/O
    (de)quantized."""

    def __init__(self, path: Path, spec: ExportedFile, threads: int = 2, *, xnnpack: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.name = spec.name
        self.spec = spec
        self.input_size = spec.inputs[0].shape[1]
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(
                model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver
            )
            self.interpreter.allocate_tensors()
            runner = self.interpreter.get_signature_runner("serving_default")
        except (ValueError, RuntimeError) as err:
            raise BadInput(f"{path}: not a readable .tflite model ({str(err).splitlines()[0]})") from None
        index = {k: d["index"] for k, d in runner.get_input_details().items()}
        index |= {k: d["index"] for k, d in runner.get_output_details().items()}
        missing = [t.name for t in (*spec.inputs, *spec.outputs) if t.name not in index]
        if missing:
            raise BadInput(f"{path}: tensors {', '.join(missing)} of the manifest are not in the file")
        self._in = [(t, index[t.name]) for t in spec.inputs]
        self._out = [(t, index[t.name]) for t in spec.outputs]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        results: list[dict[str, np.ndarray]] = []
        (in_spec, in_index), *_ = self._in
        for image in images:
            self.interpreter.set_tensor(in_index, quantize(image[None], in_spec))
            self.interpreter.invoke()
            results.append({t.name: dequantize(self.interpreter.get_tensor(i), t) for t, i in self._out})
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}


class OnnxRuntime:
    """An .onnx file on onnxruntime's CPU provider with `threads` intra-op threads (NHWC I/O)."""

    def __init__(self, path: Path, spec: ExportedFile, threads: int = 2) -> None:
        import onnxruntime as ort

        self.name = spec.name
        self.spec = spec
        self.input_size = spec.inputs[0].shape[1]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise BadInput(f"{path}: not a readable .onnx model ({str(err).splitlines()[0][:160]})") from None
        have = {v.name for v in (*self.session.get_inputs(), *self.session.get_outputs())}
        missing = [t.name for t in (*spec.inputs, *spec.outputs) if t.name not in have]
        if missing:
            raise BadInput(f"{path}: tensors {', '.join(missing)} of the manifest are not in the file")
        self._outputs = [t.name for t in spec.outputs]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        results = []
        for image in images:
            outs = self.session.run(self._outputs, {self.spec.inputs[0].name: image[None].astype(np.float32)})
            results.append(dict(zip(self._outputs, outs, strict=True)))
        return {k: np.concatenate([r[k] for r in results]) for k in self._outputs}


def open_runtimes(export_dir: Path, files: list[ExportedFile], threads: int = 2) -> list[Runtime]:
    """The runtimes of manifest entries, each file checked first (sha256, readable, its tensors) without a delegate:
    a bad file is refused before LiteRT has created (and announced on stderr) the XNNPACK delegate of another."""
    for file in files:
        if file.format == "tflite":
            LiteRTRuntime(verify_file(export_dir, file), file, threads=1, xnnpack=False)
        else:
            OnnxRuntime(verify_file(export_dir, file), file, threads=1)
    return [open_runtime(export_dir, file, threads=threads) for file in files]


def open_runtime(export_dir: Path, file: ExportedFile, threads: int = 2) -> Runtime:
    """The runtime for one manifest entry, after checking the file's sha256 against the manifest."""
    path = verify_file(export_dir, file)
    if file.format == "tflite":
        return LiteRTRuntime(path, file, threads=threads)
    return OnnxRuntime(path, file, threads=threads)
