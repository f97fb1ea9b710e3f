"""`blitzmask train`: train a variant from scratch (issue: model)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app` (not built yet)."""
