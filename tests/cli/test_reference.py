"""docs/cli.md is the CLI reference generated from the typer app: it must say what the CLI says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cli_reference_is_up_to_date() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/cli_reference.py", "--check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stderr


def test_cli_reference_lists_every_command_and_option() -> None:
    from typer.main import get_command

    from blitzmask_deploy.cli.app import app

    text = (REPO / "docs" / "cli.md").read_text()
    root = get_command(app)
    for name, command in root.commands.items():
        subs = getattr(command, "commands", {"": command})
        for sub_name, sub in subs.items():
            assert f"## `blitzmask {name}{' ' + sub_name if sub_name else ''}`" in text
            for param in sub.params:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("--") and opt != "--help":
                        assert f"`{opt}`" in text, opt
