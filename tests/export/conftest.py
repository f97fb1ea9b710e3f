"""A blitzmask-tiny checkpoint at 64×64 and its export to every format, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained blitzmask-tiny (64×64 input, the dataset's classes) saved as a checkpoint."""
    import torch

    from blitzmask_deploy.checkpoint import save_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.modeling.registry import create_model

    torch.manual_seed(0)
    dataset = CocoDataset.from_split(synth_dataset, "val")
    model = create_model("blitzmask-tiny", num_classes=dataset.num_classes, input_size=64)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, categories=dataset.categories)


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint: Path, synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_checkpoint` exported to fp32, fp16, int8 (8 calibration images) and ONNX."""
    import torch

    from blitzmask_deploy.export.pipeline import export_checkpoint

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("export")
    export_checkpoint(tiny_checkpoint, out, calib=synth_dataset, calib_images=8, progress=False)
    return out
