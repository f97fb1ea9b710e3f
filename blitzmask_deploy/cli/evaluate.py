"""`blitzmask eval`: COCO mask/box AP of a results file (issue: foundation)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app` (not built yet)."""
