"""Entry point of `blitzmask`: builds the typer app from the command modules and maps errors to exit codes.

Command modules import only typer at module level; heavy libraries (torch, litert) are imported inside the
command bodies so that `blitzmask --help` starts fast.
"""

from __future__ import annotations

import sys

import typer

from blitzmask_deploy.cli import (
    bench,
    coverage,
    data,
    demo,
    evaluate,
    export,
    models,
    predict,
    quant_debug,
    report,
    train,
    validate,
)
from blitzmask_deploy.core.errors import BadInput, CheckFailed
from blitzmask_deploy.core.openmp import set_openmp_wait_policy

app = typer.Typer(
    name="blitzmask",
    help="BlitzMask Deploy: train, export (TFLite fp32/fp16/int8, ONNX), validate and benchmark on phones.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (data, models, train, predict, evaluate, export, coverage, quant_debug, validate, bench, report, demo):
    _module.register(app)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """BlitzMask Deploy: train, export (TFLite fp32/fp16/int8, ONNX), validate and benchmark on phones."""
    if version:
        from blitzmask_deploy.core.version import VERSION

        print(VERSION)
        raise typer.Exit(0)


def main() -> None:
    """Run the CLI: a usage error or BadInput → exit 2, CheckFailed → exit 1, each with one line on stderr."""
    set_openmp_wait_policy()
    try:
        code = app(standalone_mode=False)  # usage errors come back here instead of as typer's multi-line box
    except typer.TyperException as err:  # unknown option or command, missing or invalid value, no arguments
        if type(err).__name__ == "NoArgsIsHelpError":  # `no_args_is_help`: typer has shown the help
            sys.exit(err.exit_code)
        _fail("error", err.format_message(), err.exit_code)
    except typer.Abort:
        _fail("error", "aborted", 1)
    except BadInput as err:
        _fail("error", str(err), 2)
    except CheckFailed as err:
        _fail("check failed", str(err), 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(label: str, message: str, code: int) -> None:
    """Print `label: message` as one line on stderr and exit with `code`."""
    print(f"{label}: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
