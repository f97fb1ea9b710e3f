"""Temperatures and clocks: sysfs readers (host or a device's `cat` output) and the cool-down wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

# Run on a device: one line per thermal zone "zoneN<TAB>type<TAB>millideg" and per CPU "cpuN<TAB>khz".
THERMAL_SCRIPT = (
    'for z in /sys/class/thermal/thermal_zone*; do [ -r "$z/temp" ] && '
    'printf \'%s\\t%s\\t%s\\n\' "${z##*/}" "$(cat "$z/type" 2>/dev/null)" "$(cat "$z/temp" 2>/dev/null)"; '
    "done; true"
)
CLOCKS_SCRIPT = (
    'for c in /sys/devices/system/cpu/cpu[0-9]*; do f="$c/cpufreq/scaling_cur_freq"; '
    '[ -r "$f" ] && printf \'%s\\t%s\\n\' "${c##*/}" "$(cat "$f")"; done; '
    'g=/sys/class/kgsl/kgsl-3d0/gpuclk; [ -r "$g" ] && printf \'gpu\\t%s\\n\' $(( $(cat "$g") / 1000 )); true'
)


def to_celsius(raw: str) -> float | None:
    """A sysfs temperature (millidegrees, or degrees on some drivers) in °C; None if not a number."""
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value / 1000.0 if abs(value) >= 200 else value


def parse_zones(lines: list[tuple[str, str, str]]) -> dict[str, float]:
    """{zone type: °C} from (zone dir, type, temp) triples; a repeated type gets its zone dir appended."""
    temps: dict[str, float] = {}
    for zone, kind, raw in lines:
        celsius = to_celsius(raw)
        if celsius is None:
            continue
        name = kind.strip() or zone
        if name in temps:
            name = f"{name}@{zone}"
        temps[name] = celsius
    return temps


def parse_thermal_output(text: str) -> dict[str, float]:
    """Parse the output of THERMAL_SCRIPT."""
    rows = [tuple(line.split("\t")) for line in text.splitlines() if line.count("\t") == 2]
    return parse_zones(rows)  # type: ignore[arg-type]


def parse_clocks_output(text: str) -> dict[str, int | None]:
    """Parse the output of CLOCKS_SCRIPT into {"cpu0": khz, ..., "gpu": khz|None}."""
    clocks: dict[str, int | None] = {}
    for line in text.splitlines():
        name, _, value = line.partition("\t")
        if value.strip().isdigit():
            clocks[name] = int(value)
    clocks.setdefault("gpu", None)
    return clocks


def read_thermal_zones(root: Path = Path("/sys/class/thermal")) -> dict[str, float]:
    """{zone type: °C} of every readable thermal_zone* under `root`; {} when there is none."""
    rows = []
    for zone in sorted(root.glob("thermal_zone*")) if root.is_dir() else []:
        try:
            kind = (zone / "type").read_text() if (zone / "type").exists() else zone.name
            rows.append((zone.name, kind, (zone / "temp").read_text()))
        except OSError:
            continue
    return parse_zones(rows)


def read_clocks(root: Path = Path("/sys/devices/system/cpu")) -> dict[str, int | None]:
    """{"cpu0": khz, ...} from cpufreq/scaling_cur_freq under `root`; {} when there is none."""
    clocks: dict[str, int | None] = {}
    if not root.is_dir():
        return clocks
    for cpu in sorted(root.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:]) if p.name[3:].isdigit() else -1):
        try:
            value = (cpu / "cpufreq" / "scaling_cur_freq").read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            clocks[cpu.name] = int(value)
    if clocks:
        clocks["gpu"] = None
    return clocks


def hottest(temps: dict[str, float]) -> float | None:
    """The highest temperature, or None without zones."""
    return max(temps.values()) if temps else None


def wait_for_cooldown(
    read_fn: Callable[[], dict[str, float]],
    limit_c: float,
    max_s: float,
    poll_s: float = 2.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[float, dict[str, float]]:
    """Poll `read_fn` until the hottest zone is below `limit_c` or `max_s` passed → (waited_s, final temps).

    Without any zone there is nothing to wait for: returns at once.
    """
    start = clock()
    temps = read_fn()
    while (top := hottest(temps)) is not None and top >= limit_c:
        remaining = max_s - (clock() - start)
        if remaining <= 0:
            break
        sleep(min(poll_s, remaining))
        temps = read_fn()
    return clock() - start, temps
