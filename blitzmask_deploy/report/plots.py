"""Report figures (matplotlib, Agg backend): each function writes one PNG and returns its path, or None when the
results hold nothing to plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blitzmask_deploy.report.results import Results, Row
from blitzmask_deploy.report.roofline import Roofline

_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
_DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    _pyplot().close(fig)
    return path


def _log_axis(ax: Any) -> None:
    """Log-scale x axis with plain 1-2-5 tick labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _label(row: Row) -> str:
    return f"{row.name} · {row.target}"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated in (higher x, higher y), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return sorted(front)


def _ap(results: Results, row: Row) -> float | None:
    """The AP measured on the row's device and delegate, else the host AP of its file."""
    device = results.device_ap(row)
    return row.mask_ap if device is None else device


def plot_pareto(results: Results, path: Path) -> Path | None:
    """Mask AP against fps, one colour per device/delegate, one marker per precision, Pareto front per group. Each
    cell sits at the AP measured on its device with its delegate when there is one, else at the host AP (hollow)."""
    aps = {id(r): ap for r in results.benchmarked() if (ap := _ap(results, r)) is not None}
    rows = [r for r in results.benchmarked() if id(r) in aps and r.fps]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(f"{row.device} / {row.delegate}", []).append(row)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (group, members) in enumerate(groups.items()):
        colour = colours[i % len(colours)]
        front = pareto_front([(r.fps, aps[id(r)] * 100) for r in members])
        for row in members:
            point = (row.fps, aps[id(row)] * 100)
            hollow = results.device_ap(row) is None
            ax.scatter(*point, color=colour, facecolors="none" if hollow else colour,
                       marker=_MARKERS.get(row.precision, "D"), s=60)  # fmt: skip
            if point in front:  # label the front only: off-front points would clutter the plot
                ax.annotate(f"{row.name} {row.threads}t", point, fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.plot(*zip(*front, strict=True), color=colour, linewidth=1.2, label=f"{group} (Pareto front)")
    for precision, marker in _MARKERS.items():
        ax.scatter([], [], color="grey", marker=marker, label=precision)
    ax.set_xlabel("throughput (fps = 1000 / mean latency)")
    ax.set_ylabel("mask AP (points: on the device; hollow: host)")
    ax.set_title("Accuracy vs speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def plot_latency(results: Results, path: Path) -> Path | None:
    """Box plot of every timed run per cell, with p50/p90/p99 marked."""
    rows = [r for r in results.benchmarked() if r.runs_ms]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(rows)))
    data = [r.runs_ms for r in rows]
    ax.boxplot(data, orientation="horizontal", showfliers=True, widths=0.5, medianprops={"color": "grey"},
               flierprops={"markersize": 2, "alpha": 0.5})  # fmt: skip
    for i, row in enumerate(rows, start=1):
        for value, style, name in ((row.p50_ms, "k|", "p50"), (row.p90_ms, "b|", "p90"), (row.p99_ms, "r|", "p99")):
            if value is not None:
                ax.plot(value, i, style, markersize=18, markeredgewidth=2, label=name if i == 1 else None)
    ax.set_yticks(range(1, len(rows) + 1), [_label(r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    runs = [v for r in rows for v in r.runs_ms if v > 0]
    if runs and max(runs) / min(runs) > 20:  # one slow cell would squash the others on a linear axis
        _log_axis(ax)
    ax.set_xlabel("latency per run (ms)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_title("Latency distribution per benchmark cell")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_ap_drop(results: Results, budgets: dict[str, float | None], path: Path) -> Path | None:
    """AP drop per exported file (AP points) with each file's budget as a red bar end marker."""
    rows = [r for r in results.files() if r.drop is not None]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.5 * len(rows)))
    names = [f"{r.variant} {r.name}" for r in rows]
    drops = [r.drop * 100 for r in rows]
    colours = []
    for row, drop in zip(rows, drops, strict=True):
        budget = budgets.get(row.sha256)
        colours.append("tab:red" if budget is not None and drop > budget * 100 + 1e-9 else "tab:green")
    ax.barh(names, drops, color=colours, height=0.5)
    for i, row in enumerate(rows):
        budget = budgets.get(row.sha256)
        if budget is not None:
            ax.plot([budget * 100, budget * 100], [i - 0.35, i + 0.35], color="black", linewidth=2,
                    label="budget" if i == 0 else None)  # fmt: skip
    for i, drop in enumerate(drops):
        ax.annotate(f"{drop:.2f}", (max(drop, 0.0), i), fontsize=8, xytext=(3, -3), textcoords="offset points")
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("mask AP drop vs checkpoint (AP points; negative = better than checkpoint)")
    ax.set_title("AP drop per exported file against its budget")
    ax.grid(axis="x", alpha=0.3)
    if any(b is not None for b in budgets.values()):
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_thermal(results: Results, path: Path) -> Path | None:
    """Hottest thermal zone before → after each cell, in benchmark order; sustained runs' achieved fps beside."""
    rows = [r for r in results.benchmarked() if r.thermal_before and r.thermal_after]
    if not rows:
        return None
    plt = _pyplot()
    sustained = [r for r in rows if r.sustained]
    height = 1.5 + 0.45 * len(rows)
    fig, axes = plt.subplots(1, 2 if sustained else 1, figsize=(12 if sustained else 9, height), squeeze=False)
    ax = axes[0][0]
    for i, row in enumerate(rows):
        before, after = max(row.thermal_before.values()), max(row.thermal_after.values())
        ax.plot([before, after], [i, i], color="grey", linewidth=1.5, zorder=1)
        ax.scatter([before], [i], color="tab:blue", s=30, zorder=2, label="before" if i == 0 else None)
        ax.scatter([after], [i], color="tab:red", s=30, zorder=2, label="after" if i == 0 else None)
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("hottest thermal zone (°C)")
    ax.set_title("Temperature before → after each cell (benchmark order)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if sustained:
        ax2 = axes[0][1]
        labels = [_label(r) for r in sustained]
        achieved = [float(r.sustained.get("achieved_fps") or 0.0) for r in sustained]  # type: ignore[union-attr]
        target = [float(r.sustained.get("target_fps") or 0.0) for r in sustained]  # type: ignore[union-attr]
        ax2.barh(labels, achieved, color="tab:blue", height=0.5, label="achieved fps")
        ax2.scatter(target, labels, color="black", marker="|", s=300, linewidths=2, label="target fps", zorder=3)
        ax2.set_xlim(0, max([*target, *achieved]) * 1.45)
        ax2.invert_yaxis()
        ax2.tick_params(axis="y", labelsize=8)
        ax2.set_xlabel("frames per second")
        ax2.set_title("Sustained runs")
        ax2.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_roofline(estimates: list[tuple[Row, Roofline]], path: Path) -> Path | None:
    """Measured p50 beside the compute-bound latency at the device's peak, per cell (log scale)."""
    if not estimates:
        return None
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.6 * len(estimates)))
    y = list(range(len(estimates)))
    ax.barh([v + 0.18 for v in y], [e.measured_ms for _, e in estimates], height=0.35, label="measured p50")
    ax.barh([v - 0.18 for v in y], [e.bound_ms for _, e in estimates], height=0.35, label="compute bound at peak")
    for v, (_, est) in zip(y, estimates, strict=True):
        ax.annotate(f"{est.utilisation:.1%} of peak", (est.measured_ms, v + 0.18), fontsize=7,
                    xytext=(4, -3), textcoords="offset points")  # fmt: skip
    ax.set_yticks(y, [_label(r) for r, _ in estimates], fontsize=8)
    ax.invert_yaxis()
    _log_axis(ax)
    values = [v for _, e in estimates for v in (e.measured_ms, e.bound_ms)]
    ax.set_xlim(min(values) / 2, max(values) * 2)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_title("Roofline estimate: GMACs at device peak vs measured")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


_GROUP_COLOURS = {"backbone": "tab:blue", "neck": "tab:orange", "heads": "tab:green"}
QUANT_DEBUG_TOP = 20


def plot_quant_debug(report: dict[str, Any], path: Path) -> Path | None:
    """Per-op SNR of an int8 file (quant_debug.json), the QUANT_DEBUG_TOP worst ops, coloured by model part."""
    ops = [o for o in report.get("ops", []) if isinstance(o, dict) and isinstance(o.get("snr_db"), int | float)]
    if not ops:
        return None
    worst = sorted(ops, key=lambda o: o["snr_db"])[:QUANT_DEBUG_TOP][::-1]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(worst) + 1.2))
    colours = [_GROUP_COLOURS.get(o.get("group"), "tab:gray") for o in worst]
    labels = [f"{o.get('module') or '?'} ({o.get('op', '?')})" for o in worst]
    ax.barh(range(len(worst)), [o["snr_db"] for o in worst], color=colours)
    ax.set_yticks(range(len(worst)), labels, fontsize=7)
    ax.set_xlabel("output SNR vs fp32 (dB, lower = more error)")
    ax.set_title(f"{report.get('file', 'int8')}: the {len(worst)} ops with the most quantisation error")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _GROUP_COLOURS.values()]
    ax.legend(handles, list(_GROUP_COLOURS), loc="lower right", fontsize=8)
    return _save(fig, path)
