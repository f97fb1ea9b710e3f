"""`report.html`: one self-contained page (PNGs embedded as base64 and also written beside it) + `summary.md`."""

from __future__ import annotations

import base64
import html
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from blitzmask_deploy.core.artifacts import QUANT_DEBUG_NAME
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import signals_held
from blitzmask_deploy.core.jsonio import read_json
from blitzmask_deploy.core.version import VERSION
from blitzmask_deploy.data.coco_check import is_finite
from blitzmask_deploy.report import plots
from blitzmask_deploy.report.gate import TABLE_HEADER, Budgets, GateResult, run_gate
from blitzmask_deploy.report.markdown import HEADER, row_cells, summary_markdown
from blitzmask_deploy.report.results import Results
from blitzmask_deploy.report.roofline import estimate

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1300px;color:#222;
padding:0 16px}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td:nth-child(-n+3){text-align:left}
.pass{color:#17702b;font-weight:600}.fail{color:#b00020;font-weight:600}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:13px;margin-top:4px}.note{color:#777;font-style:italic}
.failrow td{background:#fde8ea}
"""


_STAGING = ".report-"  # prefix of the hidden folder a report is rendered in
FIGURES = ("pareto.png", "latency.png", "ap_drop.png", "thermal.png", "roofline.png")
QUANT_DEBUG_FIGURE = "quant_debug.png"  # only when a quant_debug.json is found with the results


@dataclass
class ReportFiles:
    """What `write_report` produced."""

    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)
    gate: GateResult | None = None


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(path: Path | None, caption: str, missing: str) -> str:
    if path is None:
        return f'<p class="note">{html.escape(missing)}</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)} (<code>{html.escape(path.name)}</code>)</figcaption></figure>"
    )


def _gate_section(gate: GateResult | None, error: str | None) -> str:
    if gate is None:
        return f'<p class="note">No gate: {html.escape(error or "nothing to check")}</p>'
    rows = [c.cells() for c in gate.checks]
    classes = ["" if c.passed else "failrow" for c in gate.checks]
    verdict = '<span class="pass">PASS</span>' if gate.passed else '<span class="fail">FAIL</span>'
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in gate.notes)
    table = _table(TABLE_HEADER, rows, classes)
    return f"<p>Gate verdict: {verdict} (same checks as <code>blitzmask gate</code>)</p>{table}{notes}"


def write_report(results: Results, out: Path, *, budgets: Path | None = None) -> ReportFiles:
    """Write `out/report.html`, `out/summary.md` and the PNG figures; return their paths.

    Everything is read and checked first (a bad budgets file is BadInput with `out` untouched). The files are then
    rendered into a hidden folder inside `out` (one a killed run left there is deleted first) and moved into place
    with SIGINT and SIGTERM held: the old report.html and summary.md go first and the new report.html comes last,
    so `out` holds a report.html only while every file beside it is of the same report. A failure leaves no folder
    this call created."""
    cards = Budgets(budgets)
    file_budgets = {r.sha256: cards.ap_drop(r) for r in results.files()}
    quant_debug = _quant_debug(results.source)
    try:
        gate, gate_error = run_gate(results, budgets=budgets), None
    except BadInput as err:
        gate, gate_error = None, str(err)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} exists and is not a folder: choose another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        for left in out.glob(f"{_STAGING}*"):
            shutil.rmtree(left, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=_STAGING) as staging:
            files = _render(results, Path(staging), file_budgets, gate, gate_error, quant_debug)
            with signals_held():
                _move_into(out, files)
    except BaseException as err:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(err, OSError):
            raise BadInput(f"cannot write the report into {out}: {err.strerror or err}") from None
        raise
    return ReportFiles(
        html=out / files.html.name,
        markdown=out / files.markdown.name,
        images=[out / p.name for p in files.images],
        gate=gate,
    )


def _move_into(out: Path, files: ReportFiles) -> None:
    """Replace the report in `out` by the rendered `files`: report.html and summary.md of the old one removed first,
    then the figures (stale ones deleted), summary.md, and report.html last."""
    for name in (files.html.name, files.markdown.name):
        (out / name).unlink(missing_ok=True)
    for path in files.images:
        os.replace(path, out / path.name)
    for stale in {*FIGURES, QUANT_DEBUG_FIGURE} - {p.name for p in files.images}:
        (out / stale).unlink(missing_ok=True)
    os.replace(files.markdown, out / files.markdown.name)
    os.replace(files.html, out / files.html.name)


def _quant_debug(source: Path) -> dict:
    """The first quant_debug.json in (or beside) the results, checked (BadInput naming the file and the op when it
    cannot be drawn; an SNR of +inf is an op without error), or {} when there is none."""
    candidates = sorted(source.rglob(QUANT_DEBUG_NAME)) if source.is_dir() else [source.parent / QUANT_DEBUG_NAME]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return {}
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("ops", []), list):
        raise BadInput(f"{path} is not a quant_debug.json from 'blitzmask quant-debug' (no 'ops' list)")
    for i, op in enumerate(data.get("ops", [])):
        texts = ("module", "op", "group") if isinstance(op, dict) else ()
        snr = op.get("snr_db") if texts else None
        if not (is_finite(snr) or snr == math.inf) or not all(isinstance(op.get(k), str | None) for k in texts):
            raise BadInput(f"{path}: ops[{i}] is not an op with an snr_db in dB and text module, op and group")
    return data


def _device_accuracy_section(results: Results) -> list[str]:
    """The device AP of each file per device and delegate beside its host AP (none without accuracy cells)."""
    from blitzmask_deploy.report.device_accuracy import HEADER as DEVICE_HEADER
    from blitzmask_deploy.report.device_accuracy import device_accuracy_rows

    if not results.accuracy:
        return []
    return [
        "<h2>Accuracy on devices</h2>",
        "<p class='meta'>Mask AP in points of each file's outputs computed on the device with the delegate, beside "
        "the same file on host LiteRT with the same inputs; drops are the host AP (or checkpoint AP) minus it.</p>",
        _table(DEVICE_HEADER, device_accuracy_rows(results)),
    ]


def _render(
    results: Results,
    out: Path,
    file_budgets: dict[str, float | None],
    gate: GateResult | None,
    gate_error: str | None,
    quant_debug: dict,
) -> ReportFiles:
    """Write report.html, summary.md and the figures into `out` (a fresh folder)."""
    estimates = [(r, e) for r in results.benchmarked() if (e := estimate(r)) is not None]
    figures = [
        (
            plots.plot_pareto(results, out / "pareto.png"),
            "Mask AP against fps measured on each device / delegate: filled markers at the AP of the file's outputs "
            "on that device with that delegate, hollow ones at its host AP; lines join each group's Pareto front.",
            "No Pareto plot: no benchmarked file has a host AP (run validate and bench on the same export).",
        ),
        (
            plots.plot_latency(results, out / "latency.png"),
            "Every timed run per cell; black, blue and red ticks mark p50, p90 and p99.",
            "No latency plot: no benchmark cell with recorded runs.",
        ),
        (
            plots.plot_ap_drop(results, file_budgets, out / "ap_drop.png"),
            "Checkpoint AP minus file AP in AP points; the black tick is the file's budget from numerics.yaml.",
            "No AP-drop plot: no validation.json with drops.",
        ),
        (
            plots.plot_thermal(results, out / "thermal.png"),
            "Hottest thermal zone before and after each cell (and sustained-mode fps when recorded).",
            "No thermal plot: these results recorded no temperatures (the host or device exposes no thermal zones).",
        ),
        (
            plots.plot_roofline(estimates, out / "roofline.png"),
            "Latency the device would reach at its peak throughput on the model's MACs, beside the measured p50.",
            "No roofline: needs the variant's GMACs in the export manifest and a benchmarked cell.",
        ),
        (
            plots.plot_quant_debug(quant_debug, out / QUANT_DEBUG_FIGURE),
            "Per-layer int8 error: output SNR against the fp32 file of the ops with the most error, coloured by "
            "backbone, neck and heads (from quant_debug.json, `blitzmask quant-debug`).",
            "No per-layer int8 error chart: no quant_debug.json next to the export (run blitzmask quant-debug).",
        ),
    ]
    roof_rows = [
        [
            row.name,
            row.target,
            f"{est.gmacs:.3f}",
            f"{est.peak_gops:,.0f}",
            est.peak_source,
            f"{est.bound_ms:.3f}",
            f"{est.measured_ms:.2f}",
            f"{est.achieved_gops:.1f}",
            f"{est.utilisation:.1%}",
        ]
        for row, est in estimates
    ]
    refs = [
        f"{html.escape(str(v.get('variant')))}: checkpoint mask AP "
        f"<b>{(v.get('reference') or {}).get('mask_ap', 0) * 100:.2f}</b> on {html.escape(str(v.get('dataset', '?')))}"
        for v in results.validations
        if isinstance((v.get("reference") or {}).get("mask_ap"), int | float)
    ]
    devices = sorted({f"{r.device} ({r.device_serial})" for r in results.benchmarked()})
    failed = [[r.name, r.target, r.status, r.error or ""] for r in results.failed()]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>BlitzMask Deploy report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>BlitzMask Deploy report</h1>",
        f"<p class='meta'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by blitzmask-deploy {VERSION} "
        f"from <code>{html.escape(str(results.source))}</code></p>",
        "<ul>" + "".join(f"<li>{r}</li>" for r in refs),
        f"<li>{len(results.files())} exported files with host AP, {len(results.benchmarked())} benchmark cells "
        f"on {len(devices)} device(s): {html.escape(', '.join(devices)) or '–'}</li>",
        "</ul>",
        "<h2>Budgets</h2>",
        _gate_section(gate, gate_error),
        "<h2>Summary</h2>",
        "<p class='meta'>AP and drop in AP points (0–100, host evaluation of each exported file on the val split); "
        "host p50 from validation (the file's own runtime on this host); latency statistics over every timed run of "
        "the benchmark cell; fps = 1000 / mean; ΔT = hottest zone after − before."
        "</p>",
        _table(HEADER, [row_cells(r) for r in results.rows]),
        *_device_accuracy_section(results),
        "<h2>Accuracy vs speed</h2>",
        _figure(*figures[0]),
        "<h2>Latency distributions</h2>",
        _figure(*figures[1]),
        "<h2>AP drop against budgets</h2>",
        _figure(*figures[2]),
        "<h2>Thermal</h2>",
        _figure(*figures[3]),
        "<h2>Roofline estimate</h2>",
        _figure(*figures[4]),
        _table(
            ["file", "cell", "GMACs", "peak GOPS", "peak from", "bound ms", "p50 ms", "achieved GOPS", "of peak"],
            roof_rows,
        )
        if roof_rows
        else "",
        "<p class='meta'>Peaks are estimates (see docs/report.md): host from CPU flags × clock × threads, phones from "
        "vendor-quoted figures per SoC or a generic class figure. One MAC = 2 operations.</p>",
        "<h2>Per-layer int8 error</h2>",
        _figure(*figures[5]),
    ]
    if failed:
        parts += ["<h2>Cells without latency</h2>", _table(["file", "cell", "status", "error"], failed)]
    parts.append("</body></html>")
    html_path = out / "report.html"
    html_path.write_text("\n".join(parts))
    md_path = out / "summary.md"
    md_path.write_text(summary_markdown(results))
    images = [f[0] for f in figures if f[0] is not None]
    return ReportFiles(html=html_path, markdown=md_path, images=images, gate=gate)
