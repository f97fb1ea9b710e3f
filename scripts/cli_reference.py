"""Write docs/cli.md, the command-line reference, from the `blitzmask` typer app itself.

Usage: python scripts/cli_reference.py [--check]   (--check: exit 1 when docs/cli.md is not what the CLI says)
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the CLI of this checkout, whichever package the interpreter would import

from blitzmask_deploy.cli.app import app  # noqa: E402

OUT = ROOT / "docs" / "cli.md"
HEADER = """# Command-line reference

Every command of `blitzmask` (also `python -m blitzmask_deploy`), with its options and their defaults. Commands
that produce figures take `--json` and then print one JSON object on stdout (progress and logs go to stderr). Exit
codes: 0 ok, 1 a check failed (a budget), 2 bad input (one line on stderr).

This page is generated from the CLI (`python scripts/cli_reference.py`); a test checks that it matches.
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param: Any) -> str:
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        return "on" if param.default else "off"
    if param.default in (None, [], ()):
        return ""
    if isinstance(param.default, list | tuple):
        return ", ".join(f"`{v}`" for v in param.default)
    return f"`{param.default}`"


def _type_name(annotation: Any) -> str:
    """'path', 'text', 'integer', 'number'; 'X, repeatable' for list[X]; an optional type as its type."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list:
        return _type_name(args[0]) + ", repeatable"
    if args:
        return _type_name(args[0])
    return {Path: "path", str: "text", int: "integer", float: "number", bool: "boolean"}.get(
        annotation, str(annotation)
    )


def _command(ctx: Any, command: Any, path: str) -> list[str]:
    lines = [f"## `{path}`", "", _cell(command.help or ""), "", "```", command.get_usage(ctx), "```", ""]
    params = [p for p in command.get_params(ctx) if p.name != "help"]
    if params:
        lines += ["| argument / option | type | default | description |", "| --- | --- | --- | --- |"]
        for param in params:
            if param.param_type_name == "argument":
                name = f"`{' '.join(param.get_usage_pieces(ctx))}`"
            else:
                name = " / ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
            kind = "flag" if getattr(param, "is_flag", False) else _type_name(param.type_descriptor.annotation)
            lines.append(f"| {name} | {kind} | {_default(param)} | {_cell(getattr(param, 'help', '') or '')} |")
        lines.append("")
    return lines


def _walk(ctx: Any, command: Any, path: str) -> list[str]:
    if not hasattr(command, "list_commands"):
        return _command(ctx, command, path)
    lines: list[str] = []
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            lines += _walk(sub.context_class(sub, info_name=name, parent=ctx), sub, f"{path} {name}")
    return lines


def render() -> str:
    """The whole reference as Markdown."""
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="blitzmask")
    return (
        HEADER + "\n" + "\n".join(_command(ctx, root, "blitzmask") + _walk(ctx, root, "blitzmask")).rstrip("\n") + "\n"
    )


def main() -> int:
    """Write docs/cli.md, or with --check compare it with what the CLI says."""
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
