"""Checkpoint files: round trip with weights_only=True; foreign or corrupt files are BadInput."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from blitzmask_deploy.core.checkpoints import read_checkpoint, save_checkpoint
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.modeling.registry import create_model, model_from_checkpoint

CATS = [{"id": 1, "name": "ellipse"}, {"id": 2, "name": "star"}]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model("blitzmask-tiny", num_classes=2, input_size=64)
    with torch.no_grad():  # non-default BN statistics must survive too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, categories=CATS, extra={"metrics": {"mask_ap": 0.5}})
    return path, model.eval()


def test_round_trip_gives_identical_outputs(saved: tuple[Path, torch.nn.Module]) -> None:
    path, model = saved
    checkpoint = read_checkpoint(path)
    loaded = model_from_checkpoint(checkpoint)
    assert not loaded.training
    assert loaded.config == model.config
    assert checkpoint.categories == CATS
    assert checkpoint.metrics == {"mask_ap": 0.5}
    assert len(checkpoint.sha256) == 64
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_file_is_plain_weights_only(saved: tuple[Path, torch.nn.Module]) -> None:
    payload = torch.load(saved[0], weights_only=True)
    assert payload["format"] == "blitzmask-checkpoint"
    assert payload["config"]["num_classes"] == 2


@pytest.mark.parametrize(
    "kind", ["random", "plain_dict", "truncated", "missing", "wrong_weights", "bad_categories", "class_mismatch"]
)
def test_foreign_or_corrupt_is_bad_input(kind: str, saved: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    if kind == "random":
        bad.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif kind == "plain_dict":
        torch.save({"weights": torch.zeros(3)}, bad)
    elif kind == "truncated":
        data = saved[0].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "wrong_weights":
        payload = torch.load(saved[0], weights_only=True)
        payload["state_dict"] = {k: v for i, (k, v) in enumerate(payload["state_dict"].items()) if i % 2}
        torch.save(payload, bad)
    elif kind == "bad_categories":
        payload = torch.load(saved[0], weights_only=True)
        payload["categories"] = [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]
        torch.save(payload, bad)
    elif kind == "class_mismatch":
        payload = torch.load(saved[0], weights_only=True)
        payload["categories"] = CATS[:1]
        torch.save(payload, bad)
    with pytest.raises(BadInput) as err:
        model_from_checkpoint(read_checkpoint(bad))
    assert "\n" not in str(err.value)
    assert str(bad) in str(err.value)
