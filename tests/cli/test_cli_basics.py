"""The CLI's global behaviour: help, version, usage errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import blitzmask_deploy
from blitzmask_deploy.core.openmp import SPIN_COUNT
from tests.conftest import run_cli


def test_help_lists_commands_and_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from blitzmask_deploy.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "print('TORCH_LOADED' if 'torch' in sys.modules else 'TORCH_ABSENT')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "validate" in out.stdout
    assert "TORCH_ABSENT" in out.stdout


@pytest.mark.parametrize("module", ["blitzmask_deploy.cli.app", "blitzmask_deploy"])
def test_version(module: str) -> None:
    """`python -m` runs the CLI from either module (the package's is what `torchrun -m` is given)."""
    r = run_cli("--version", module=module)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == blitzmask_deploy.__version__


@pytest.mark.parametrize(
    ("user_env", "expected"),
    [
        ({}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": str(SPIN_COUNT)}),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "30000000000"}),
        ({"GOMP_SPINCOUNT": "0"}, {"GOMP_SPINCOUNT": "0"}),
    ],
)
def test_torch_threads_spin_briefly_unless_the_user_says_otherwise(
    user_env: dict[str, str], expected: dict[str, str]
) -> None:
    """What libgomp reports (OMP_DISPLAY_ENV) when a command loads torch: the bounded spin, or the user's choice."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(user_env, OMP_DISPLAY_ENV="VERBOSE")
    r = run_cli("models", "--json", module="blitzmask_deploy", env=env)
    assert r.returncode == 0, r.stderr
    for name, value in expected.items():
        assert f"{name} = '{value}'" in r.stderr


def test_unknown_command_is_usage_error() -> None:
    r = run_cli("no-such-command")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_missing_path_is_one_line_exit_2(tmp_path) -> None:
    r = run_cli("validate", str(tmp_path / "missing.pt"), "--data", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: model not found: {tmp_path / 'missing.pt'}"]


def test_the_suite_never_reaches_the_users_adb_server() -> None:
    """Commands run by the tests look for the default adb server on a port nothing listens on."""
    from blitzmask_deploy.bench.adb import default_adb_server, server_reachable

    assert os.environ["ANDROID_ADB_SERVER_PORT"] != "5037"
    assert not server_reachable(default_adb_server())
