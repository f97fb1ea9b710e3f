"""`blitzmask devices` and `blitzmask bench` (issue: benchmark app and driver)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app` (not built yet)."""
