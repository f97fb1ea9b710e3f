"""The installable wheel: built from the checkout, unpacked outside it, it carries the model cards and runs the main
commands with no checkout on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps .` of the checkout, unpacked into a folder outside the repository."""
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("blitzmask_deploy-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert not [n for n in names if n.startswith(("tests/", "scripts/"))]  # the test rig stays out of the product
    return site


def _run(site: Path, cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "blitzmask_deploy", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd, env=env, check=False)


def test_wheel_carries_the_cards_and_runs_outside_the_checkout(
    unpacked_wheel: Path, tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    cards = sorted(p.parent.name for p in (unpacked_wheel / "blitzmask_deploy" / "models").glob("*/model.yaml"))
    assert cards == sorted(p.parent.name for p in (REPO / "models").glob("*/model.yaml"))
    where = subprocess.run(
        [sys.executable, "-c", "import blitzmask_deploy.core.cards as c; print(c.__file__); print(c.MODELS_DIR)"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(unpacked_wheel)},
        check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(unpacked_wheel) for p in where), where

    models = _run(unpacked_wheel, tmp_path, "models", "--json")
    assert models.returncode == 0, models.stderr
    assert len(json.loads(models.stdout)["variants"]) == len(cards) == 6

    export = tmp_path / "export"
    exported = _run(unpacked_wheel, tmp_path, "export", tiny_checkpoint, "--out", export, "--formats", "fp32,int8",
                    "--calib", synth_dataset, "--calib-images", "4", "--json")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    validated = _run(
        unpacked_wheel, tmp_path, "validate", export, "--data", synth_dataset, "--max-images", "2", "--json"
    )
    assert validated.returncode == 0, validated.stderr
    assert [row["name"] for row in json.loads(validated.stdout)["variants"]] == ["tflite-fp32", "tflite-int8"]
