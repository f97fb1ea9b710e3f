"""Runtimes: int8 inputs quantised and outputs dequantised with the manifest's scale and zero point."""

from __future__ import annotations

import numpy as np

from blitzmask_deploy.core.artifacts import QuantParams, TensorSpec
from blitzmask_deploy.inference.runtimes import dequantize, quantize


def test_int8_quantize_dequantize_round_trip() -> None:
    spec = TensorSpec(name="x", shape=[1, 4], dtype="int8", quant=QuantParams(scale=1 / 255, zero_point=-128))
    x = np.array([[0.0, 0.6, 1.0, 2.0]], np.float32)
    q = quantize(x, spec)
    assert q.dtype == np.int8
    assert q.tolist() == [[-128, 25, 127, 127]]  # 2.0 saturates
    np.testing.assert_allclose(dequantize(q, spec)[0, :3], x[0, :3], atol=0.5 / 255 + 1e-7)
