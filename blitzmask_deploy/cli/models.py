"""`blitzmask models`: registered variants with params and GMACs (issue: model)."""

from __future__ import annotations

import typer

from blitzmask_deploy.cli.common import emit_json


def register(app: typer.Typer) -> None:
    """Add `models` to `app`."""
    app.command("models")(models_cmd)


def models_cmd(
    names: list[str] = typer.Argument(None, help="Variants to show (default: all registered)."),
    input_size: int = typer.Option(0, "--input-size", help="Count GMACs at this input size (default: each variant's)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """List BlitzMask variants: backbone, parameters, GMACs at the default (or given) input size."""
    from blitzmask_deploy.modeling.registry import list_variants, variant_config

    selected = names or list_variants()
    for name in selected:  # an unknown name or impossible size → BadInput before torch is imported
        variant_config(name, **({"input_size": input_size} if input_size else {}))

    import torch

    from blitzmask_deploy.modeling.complexity import summarize_variant

    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = [summarize_variant(name, input_size or None) for name in selected]
    if as_json:
        emit_json({"variants": rows})
        return
    print(f"{'variant':<16} {'backbone':<24} {'params':>9} {'GMACs':>7} {'input':>6}")
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}M"
        print(f"{r['name']:<16} {r['backbone']:<24} {params:>9} {r['gmacs']:>7.3f} {r['input_size']:>6}")
