"""Thermal zones, clocks and the cool-down wait."""

from __future__ import annotations

from pathlib import Path

import pytest

from blitzmask_deploy.bench.thermal import (
    parse_clocks_output,
    parse_thermal_output,
    read_clocks,
    read_thermal_zones,
    wait_for_cooldown,
)


def make_zones(root: Path, zones: dict[str, int]) -> Path:
    for i, (kind, milli) in enumerate(zones.items()):
        zone = root / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    return root


def test_read_zones_and_clocks(tmp_path) -> None:
    root = make_zones(tmp_path / "thermal", {"cpu-big": 45500, "battery": 31000})
    assert read_thermal_zones(root) == {"cpu-big": 45.5, "battery": 31.0}
    assert read_thermal_zones(tmp_path / "missing") == {}
    for i, khz in enumerate([1800000, 2400000]):
        (tmp_path / "cpu" / f"cpu{i}" / "cpufreq").mkdir(parents=True)
        (tmp_path / "cpu" / f"cpu{i}" / "cpufreq" / "scaling_cur_freq").write_text(f"{khz}\n")
    (tmp_path / "cpu" / "cpufreq").mkdir()  # not a cpu
    assert read_clocks(tmp_path / "cpu") == {"cpu0": 1800000, "cpu1": 2400000, "gpu": None}
    assert read_clocks(tmp_path / "nothing") == {}


def test_parse_device_output() -> None:
    text = "thermal_zone0\tcpu\t52000\nthermal_zone1\tcpu\t48000\nthermal_zone2\tskin\tbad\ngarbage\n"
    assert parse_thermal_output(text) == {"cpu": 52.0, "cpu@thermal_zone1": 48.0}
    assert parse_clocks_output("cpu0\t300000\ncpu1\t\ngpu\t585000\n") == {"cpu0": 300000, "gpu": 585000}


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, s: float) -> None:
        self.now += s

    def clock(self) -> float:
        return self.now


def test_cooldown_waits_until_below_limit() -> None:
    t = FakeTime()
    temps = lambda: {"cpu": 60.0 - 2.0 * t.now, "skin": 30.0}  # noqa: E731 — cools 2 °C/s
    waited, final = wait_for_cooldown(temps, 40.0, 100.0, 1.0, sleep=t.sleep, clock=t.clock)
    assert waited == pytest.approx(11.0) and final["cpu"] == pytest.approx(38.0)  # 40.0 at 10 s is not below


def test_cooldown_gives_up_after_max_s_and_skips_without_zones() -> None:
    t = FakeTime()
    waited, final = wait_for_cooldown(lambda: {"cpu": 90.0}, 40.0, 7.0, 2.0, sleep=t.sleep, clock=t.clock)
    assert waited == pytest.approx(7.0) and final == {"cpu": 90.0}
    waited, final = wait_for_cooldown(dict, 40.0, 7.0, 2.0, sleep=t.sleep, clock=t.clock)
    assert final == {} and waited == 0.0
