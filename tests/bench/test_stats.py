"""Latency statistics of a cell."""

from __future__ import annotations

import math

import pytest

from blitzmask_deploy.bench.stats import STAT_KEYS, summarize


def test_percentiles_are_linear_interpolation() -> None:
    runs = [float(v) for v in range(100, 0, -1)]  # 1..100 ms, unsorted
    s = summarize(runs)
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert (s["min_ms"], s["max_ms"]) == (1.0, 100.0)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["std_ms"] == pytest.approx(math.sqrt((100**2 - 1) / 12))
    assert s["fps"] == pytest.approx(1000 / 50.5)


def test_single_run_and_outlier() -> None:
    s = summarize([4.0])
    assert s["p50_ms"] == s["p99_ms"] == s["min_ms"] == s["max_ms"] == 4.0
    assert s["std_ms"] == 0.0
    outlier = summarize([2.0] * 99 + [200.0])
    assert outlier["p50_ms"] == 2.0 and outlier["max_ms"] == 200.0
    assert outlier["p99_ms"] == pytest.approx(2.0 + 0.01 * 198.0)


def test_no_runs_gives_none() -> None:
    assert summarize([]) == dict.fromkeys(STAT_KEYS)
