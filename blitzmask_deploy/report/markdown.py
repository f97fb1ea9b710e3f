"""The summary table (Markdown and plain cells shared with the HTML page)."""

from __future__ import annotations

from blitzmask_deploy.report.results import Results, Row

HEADER = [
    "variant",
    "file",
    "precision",
    "mask AP",
    "drop",
    "host p50 ms",
    "device",
    "delegate",
    "threads",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "fps",
    "init ms",
    "ΔT °C",
    "status",
]


def _num(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def row_cells(row: Row) -> list[str]:
    """One summary line as strings (AP and drop in AP points)."""
    delegate = row.delegate or "–"
    if row.delegate_applied and row.delegate and row.delegate_applied != row.delegate:
        delegate = f"{row.delegate} → {row.delegate_applied}"
    return [
        row.variant,
        row.name,
        row.precision,
        _num(row.mask_ap, scale=100),
        _num(row.drop, scale=100),
        _num(row.host_p50_ms),
        row.device or "–",
        delegate,
        "–" if row.threads is None else str(row.threads),
        _num(row.p50_ms),
        _num(row.p90_ms),
        _num(row.p99_ms),
        _num(row.fps, 1),
        _num(row.init_ms, 1),
        _num(row.thermal_delta_c, 1),
        row.status,
    ]


def summary_markdown(results: Results) -> str:
    """`summary.md`: what was measured, then one table line per file × benchmark cell."""
    refs = {v.get("variant"): (v.get("reference") or {}).get("mask_ap") for v in results.validations}
    lines = ["# BlitzMask Deploy — results summary", ""]
    for variant, ap in refs.items():
        if isinstance(ap, int | float):
            lines.append(f"- {variant}: checkpoint mask AP {ap * 100:.2f} (host, val split)")
    lines += [
        f"- source: `{results.source}`",
        "- AP and drop in AP points (0–100); host p50 from `blitzmask validate` (its own runtime, batch 1);",
        "  latency columns from the benchmark cells (p50/p90/p99 of every timed run).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row_cells(r)) + " |" for r in results.rows]
    return "\n".join(lines) + "\n"
