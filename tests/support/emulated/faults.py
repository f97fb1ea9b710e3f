"""Fault switches of the emulated device: a delegate whose accuracy-mode outputs differ from the host's, the way a
phone's delegate can compute differently.

- `fp16`: float inputs and outputs go through float16 (as a GPU delegate computing in half precision would);
  integer tensors are unchanged.
- `noise`: every output tensor gets N(0, σ) noise with σ = 0.3 × the standard deviation of that tensor's own values
  (its spread: the noise scales with what the head outputs; at least one step for integer tensors, rounded and
  clipped to the dtype), seeded by the tensor's name in the output pack, so reruns are identical. Strong enough that
  a trained model's AP drops (8.5 points for the trained blitzmask-tiny of the tests; docs/experiments.md), weak
  enough that its detections survive.
- `zero`: the first output tensor (index 0) is all zeros (raw zeros, also for int8 tensors).
- `nan`: one value of every float output tensor is NaN (as a GPU delegate whose fp16 sums overflow); integer
  tensors are unchanged.

Faults change accuracy mode only; timing results are the host's as they are.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from blitzmask_deploy.bench.protocol import DELEGATES, pack_count, read_pack, write_pack

KINDS = ("fp16", "noise", "zero", "nan")
NOISE_STD = 0.3  # of each output tensor's own standard deviation


def check_faults(faults: dict[str, str] | None) -> dict[str, str]:
    """{delegate: kind} validated (ValueError naming the bad entry)."""
    for delegate, kind in (faults or {}).items():
        if delegate not in DELEGATES:
            raise ValueError(f"fault for unknown delegate {delegate!r} (one of {', '.join(DELEGATES)})")
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r} for {delegate} (one of {', '.join(KINDS)})")
    return dict(faults or {})


def parse_fault(text: str) -> tuple[str, str]:
    """'DELEGATE=KIND' → (delegate, kind); ValueError when malformed or unknown."""
    delegate, sep, kind = text.partition("=")
    if not sep:
        raise ValueError(f"--fault expects DELEGATE=KIND, got {text!r}")
    check_faults({delegate: kind})
    return delegate, kind


def run_with_fault(runner: Callable[..., dict], kind: str | None, model: Path, inputs: Path, outputs: Path,
                   **kwargs: object) -> dict:  # fmt: skip
    """`runner(model, inputs, outputs, **kwargs)` (an accuracy runner on tensor packs) with fault `kind` applied
    (None: none)."""
    if kind == "fp16" and inputs.is_file():
        with tempfile.TemporaryDirectory(prefix="fp16-inputs-") as tmp:
            try:
                rounded = _rewrite(inputs, Path(tmp) / inputs.name, _fp16)
            except ValueError:  # not a pack: the runner reports it
                rounded = inputs
            result = runner(model, rounded, outputs, **kwargs)
        result["inputs"] = str(inputs)
    else:
        result = runner(model, inputs, outputs, **kwargs)
    if kind is not None and result["status"] == "ok":
        _rewrite(outputs, outputs, _FAULTS[kind])
    return result


def _rewrite(source: Path, target: Path, fault: Callable[[str, np.ndarray], np.ndarray]) -> Path:
    """The tensor pack `source` with `fault(name, tensor)` applied to each tensor, written to `target` → target."""
    partial = target.with_name(target.name + ".partial")
    write_pack(partial, pack_count(source), ((name, fault(name, array)) for name, array in read_pack(source)))
    return partial.replace(target)


def _fp16(name: str, array: np.ndarray) -> np.ndarray:
    return array.astype(np.float16).astype(array.dtype) if array.dtype.kind == "f" else array


def _noise(name: str, array: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    sigma = NOISE_STD * float(array.astype(np.float64).std())
    if array.dtype.kind != "f":
        info = np.iinfo(array.dtype)
        noisy = np.round(array + rng.normal(0.0, max(sigma, 1.0), array.shape))
        return np.clip(noisy, info.min, info.max).astype(array.dtype)
    return (array + rng.normal(0.0, sigma, array.shape)).astype(array.dtype)


def _zero(name: str, array: np.ndarray) -> np.ndarray:
    return np.zeros_like(array) if name.rpartition(".")[2] == "0" else array


def _nan(name: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind != "f":
        return array
    broken = array.copy()
    broken.flat[broken.size // 2] = np.nan
    return broken


_FAULTS = {"fp16": _fp16, "noise": _noise, "zero": _zero, "nan": _nan}
