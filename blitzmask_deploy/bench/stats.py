"""Latency statistics of one benchmark cell, computed by the driver from every timed run.

Percentiles use numpy's default "linear" method (interpolation between the two closest ranks), so p50 of an
even number of runs is the mean of the two middle runs. The Android app's own summary uses nearest-rank; the
store always holds the driver's numbers, recomputed from the raw `runs_ms`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STAT_KEYS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps")


def summarize(runs_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99, mean, std (population), min, max in ms and fps = 1000 / mean; all None without runs."""
    if len(runs_ms) == 0:
        return dict.fromkeys(STAT_KEYS)
    arr = np.asarray(runs_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99], method="linear")
    mean = float(arr.mean())
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": mean,
        "std_ms": float(arr.std()),
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
        "fps": 1000.0 / mean if mean > 0 else None,
    }
