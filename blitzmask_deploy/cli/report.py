"""`blitzmask report` (HTML + PNG + Markdown from stored results) and `blitzmask gate` (budget checks for CI)."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, emit_verdict, existing_path, info


def register(app: typer.Typer) -> None:
    """Add `report` and `gate` to `app`."""
    app.command("report")(report_cmd)
    app.command("gate")(gate_cmd)


_RESULTS_HELP = "A run directory (demo output), a .sqlite bench store, or a validation.json."


def report_cmd(
    results: Path = typer.Argument(..., help=_RESULTS_HELP),
    out: Path = typer.Option(..., "--out", help="Directory for report.html, summary.md and the PNG plots."),
    budgets: Path | None = typer.Option(None, "--budgets", help="numerics.yaml to draw budgets from (default: card)."),
    update_cards: bool = typer.Option(
        False, "--update-cards", help="Append the measured figures to models/<variant>/perf.yaml under 'measured'."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Write a self-contained report.html (Pareto, latency, AP drop, thermal, roofline) and summary.md."""
    from blitzmask_deploy.report.cards import read_perf_cards, update_perf_cards
    from blitzmask_deploy.report.html import write_report
    from blitzmask_deploy.report.sources import load_results

    loaded = load_results(existing_path(results, "results"))
    cards = read_perf_cards(loaded) if update_cards else {}  # a card that cannot be read: before anything is written
    files = write_report(loaded, out, budgets=budgets)
    updated = [str(p) for p in update_perf_cards(loaded, cards=cards)] if update_cards else []
    if as_json:
        emit_json(
            {
                "html": files.html,
                "markdown": files.markdown,
                "images": files.images,
                "rows": len(loaded.rows),
                "gate_passed": None if files.gate is None else files.gate.passed,
                "updated_cards": updated,
            }
        )
    else:
        for path in updated:
            info(f"updated {path}")
        print(f"report: {files.html.resolve()}")


def gate_cmd(
    results: Path = typer.Argument(..., help=_RESULTS_HELP),
    budgets: Path | None = typer.Option(
        None, "--budgets", help="numerics.yaml with ap_drop_max (default: models/<variant>/numerics.yaml)."
    ),
    max_latency_ms: float | None = typer.Option(
        None, "--max-latency-ms", help="p50 latency limit for every benchmark cell (default: card's limit, if any)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Exit 1 when any file's AP drop or any cell's p50 latency exceeds its budget; print the checks."""
    from blitzmask_deploy.report.gate import run_gate
    from blitzmask_deploy.report.sources import load_results

    result = run_gate(load_results(existing_path(results, "results")), budgets=budgets, max_latency_ms=max_latency_ms)
    emit_verdict(result, as_json)
