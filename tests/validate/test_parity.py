"""Per-head parity: max and mean |Δ| between two runtimes' outputs."""

from __future__ import annotations

import numpy as np
import pytest

from blitzmask_deploy.validate.parity import head_parity


def test_head_parity_max_and_mean() -> None:
    ref = {"heatmap": np.zeros((1, 2, 2, 1), np.float32), "box": np.ones((1, 2, 2, 4), np.float32)}
    other = {"heatmap": np.array([0.0, 0.1, 0.0, 0.3], np.float32).reshape(1, 2, 2, 1), "box": ref["box"].copy()}
    max_abs, mean_abs = head_parity(ref, other)
    assert max_abs["heatmap"] == pytest.approx(0.3)
    assert mean_abs["heatmap"] == pytest.approx(0.1)
    assert max_abs["box"] == 0.0
    with pytest.raises(ValueError, match="box"):
        head_parity(ref, {"heatmap": other["heatmap"]})
