"""Shared fixtures: a small procedural COCO dataset made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from blitzmask_deploy.openmp import set_openmp_wait_policy

set_openmp_wait_policy()  # as the CLI does, before any test imports torch


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-train / 8-val procedural COCO dataset at 128×128 (root dir with images/ and annotations/)."""
    from blitzmask_deploy.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, train=24, val=8, size=128, seed=0, progress=False)
    return root
