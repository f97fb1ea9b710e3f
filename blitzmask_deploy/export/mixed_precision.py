"""Mixed-precision int8 on an AP budget: the cheapest per-op recipe whose host mask-AP drop stays within budget.

Start fully int8, first with the calibrated activation ranges and then with each wider range of HEADROOMS (the
best of them is kept); then the ops with the worst per-op error (lowest SNR, see quant_debug.py) move to int16
activations with int8 weights (a16w8), more at each step (1, 2, 4, … then a bisection back to the fewest that
hold); only when every op at a16w8 is not enough do the worst ops move to float. The search stops as soon as the
budget holds; the statistics of one calibration are reused for every candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blitzmask_deploy.core.artifacts import OpPrecision
from blitzmask_deploy.core.errors import CheckFailed

RANKING_IMAGES = 16  # images used to rank ops by their error


@dataclass
class MixedPrecision:
    """The recipe the search settled on: op scope → precision for the ops not in full int8, and its AP drop."""

    overrides: dict[str, str]
    ap_drop: float
    evaluations: int
    headroom: float = 1.0  # the factor every activation range was widened by (quantize.with_headroom)


def quantize_on_budget(
    fp32: Path,
    calibration: Sequence[np.ndarray],
    out: Path,
    *,
    budget: float,
    ap_drop: Callable[[Path], float],
    threads: int = 2,
    algorithm: str = "min_max",
    headroom: float | None = None,
) -> MixedPrecision:
    """Write to `out` the cheapest quantisation of `fp32` (scales chosen by `algorithm`, activation ranges widened
    by `headroom`, or by the best of HEADROOMS when None) whose `ap_drop(file)` is at most `budget` (AP as a
    fraction); CheckFailed when not even every op in float holds it."""
    from blitzmask_deploy.export.quant_debug import op_errors
    from blitzmask_deploy.export.quantize import HEADROOMS, calibrate, quantize_calibrated, with_headroom

    calibrated = calibrate(fp32, calibration, threads=threads)
    factors = HEADROOMS if headroom is None else (headroom,)
    stats = {factor: with_headroom(fp32, calibrated, factor) for factor in factors}
    tried: dict[tuple, float] = {}

    def write(factor: float, overrides: dict[str, str]) -> Path:
        return quantize_calibrated(fp32, stats[factor], out, overrides=overrides, algorithm=algorithm)

    def drop(factor: float, overrides: dict[str, str]) -> float:
        key = (factor, *sorted(overrides.items()))
        if key not in tried:
            tried[key] = ap_drop(write(factor, overrides))
        return tried[key]

    for factor in factors:
        if drop(factor, {}) <= budget:
            return MixedPrecision({}, tried[(factor,)], len(tried), factor)
    factor = min(factors, key=lambda f: tried[(f,)])
    errors = op_errors(fp32, write(factor, {}), calibration[:RANKING_IMAGES], threads=threads)
    order = [op.scope for op in sorted(errors, key=lambda o: o.snr_db)]
    stages: list[Callable[[int], dict[str, str]]] = [
        lambda k: dict.fromkeys(order[:k], "a16w8"),
        lambda k: dict.fromkeys(order, "a16w8") | dict.fromkeys(order[:k], "fp32"),
    ]
    for recipe in stages:
        count = _fewest(len(order), lambda k, recipe=recipe: drop(factor, recipe(k)) <= budget)
        if count is not None:
            best = recipe(count)
            result = drop(factor, best)
            write(factor, best)  # the last file written may be another candidate
            return MixedPrecision(best, result, len(tried), factor)
    raise CheckFailed(
        f"no int8 recipe holds the AP budget of {100 * budget:.2f} points: with every op in float the drop is "
        f"{100 * min(tried.values()):.2f} points (is the fp32 file itself within budget?)"
    )


def op_precisions(fp32: Path, overrides: dict[str, str]) -> tuple[list[OpPrecision], float]:
    """The manifest's record of a recipe: each op not in full int8 (index in the fp32 graph, type, module,
    precision), and the share of the model's MACs that stays in full int8."""
    from blitzmask_deploy.export.coverage import op_modules
    from blitzmask_deploy.export.quant_debug import graph_ops
    from blitzmask_deploy.export.quantize import op_scopes

    types, _, macs = graph_ops(fp32)
    ops, slow = [], 0
    for index, (scope, module) in enumerate(zip(op_scopes(fp32), op_modules(fp32), strict=True)):
        if scope in overrides:
            ops.append(OpPrecision(index=index, op=types[index], module=module, precision=overrides[scope]))
            slow += macs[index]
    total = sum(macs)
    return ops, round(1.0 - slow / total, 6) if total else 1.0


def _fewest(count: int, holds: Callable[[int], bool]) -> int | None:
    """The smallest k in 1..count for which `holds(k)` (assumed monotone): doubling, then a bisection."""
    low, k = 0, 1
    while not holds(k):
        if k == count:
            return None
        low, k = k, min(2 * k, count)
    while k - low > 1:
        mid = (low + k) // 2
        low, k = (low, mid) if holds(mid) else (mid, k)
    return k
