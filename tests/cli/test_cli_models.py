"""`blitzmask models`: every variant with params and GMACs; JSON on stdout; bad names exit 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from blitzmask_deploy.cli.app import app
from blitzmask_deploy.modeling.registry import list_variants
from tests.conftest import run_cli


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["models", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


def test_models_json_lists_every_variant() -> None:
    code, stdout = invoke("--json")
    assert code == 0
    rows = json.loads(stdout)["variants"]
    assert [row["name"] for row in rows] == list_variants()
    assert all(set(row) == {"name", "params", "gmacs", "input_size", "backbone"} for row in rows)
    assert all(row["input_size"] == 320 for row in rows)
    lite = rows[1:]
    assert [row["backbone"] for row in lite] == [f"efficientnet-lite{i}" for i in range(5)]
    gmacs = [row["gmacs"] for row in rows]
    params = [row["params"] for row in rows]
    assert gmacs == sorted(gmacs) and params == sorted(params)  # tiny < b0 < … < b4
    assert 0.01 < gmacs[0] < 0.5 < gmacs[-1] < 10


def test_models_table_and_input_size() -> None:
    code, stdout = invoke("blitzmask-tiny", "--input-size", "640")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["variant", "backbone", "params", "GMACs", "input"]
    assert lines[1].split()[0] == "blitzmask-tiny" and lines[1].split()[-1] == "640"
    small = json.loads(invoke("blitzmask-tiny", "--json")[1])["variants"][0]["gmacs"]
    assert float(lines[1].split()[3]) == round(4 * small, 3)


def test_unknown_variant_is_one_line_exit_2() -> None:
    r = run_cli("models", "blitzmask-b9", timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: unknown model 'blitzmask-b9' (choose from {', '.join(list_variants())})"
    ]
