"""`blitzmask eval`: COCO mask/box AP of a results file (issue: foundation)."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json


def register(app: typer.Typer) -> None:
    """Add `eval` to `app`."""
    app.command("eval")(eval_cmd)


def eval_cmd(
    gt: Path = typer.Option(..., "--gt", help="COCO ground-truth instance JSON."),
    pred: Path = typer.Option(..., "--pred", help="COCO results JSON (list; RLE segmentation, optional bbox)."),
    backend: str = typer.Option("faster", "--backend", help="faster (faster-coco-eval) or pycocotools."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """COCO mask AP (and box AP when the predictions carry boxes)."""
    from blitzmask_deploy.data.coco_eval import evaluate

    result = evaluate(gt, pred, backend=backend)
    if as_json:
        emit_json(result)
        return
    for key, value in result.items():
        print(f"{key:<16} {'n/a' if value is None else f'{value:.4f}'}")
