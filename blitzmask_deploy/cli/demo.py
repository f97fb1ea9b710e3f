"""`blitzmask demo`: the whole pipeline on synthetic data (issue: demo and report)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app` (not built yet)."""
