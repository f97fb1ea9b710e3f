"""Tiny training runs on the synthetic fixture: outputs, exact resume, 2-process DDP (gloo)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from blitzmask_deploy.checkpoint import load_checkpoint, read_checkpoint
from blitzmask_deploy.errors import BadInput
from blitzmask_deploy.train.loop import TrainConfig, train

pytestmark = pytest.mark.slow


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=data, model="blitzmask-tiny", out=out, epochs=2, batch_size=4, input_size=64, workers=0,
        progress=False, eval_max_images=4, threads=1,
    )  # fmt: skip
    return TrainConfig(**(base | kw))


def _assert_same_state(a: Path, b: Path) -> None:
    pa, pb = read_checkpoint(a), read_checkpoint(b)
    for key, value in pa["state_dict"].items():
        torch.testing.assert_close(value, pb["state_dict"][key], rtol=0, atol=0, msg=f"EMA {key}")
    ta, tb = pa["extra"]["train"], pb["extra"]["train"]
    for key, value in ta["model"].items():
        torch.testing.assert_close(value, tb["model"][key], rtol=0, atol=0, msg=f"model {key}")
    assert ta["state"]["step"] == tb["state"]["step"]
    assert ta["ema_updates"] == tb["ema_updates"]
    for sa, sb in zip(ta["optimizer"]["state"].values(), tb["optimizer"]["state"].values(), strict=True):
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=0, atol=0)


def test_train_writes_metrics_and_checkpoints_and_resumes_exactly(synth_dataset: Path, tmp_path: Path) -> None:
    full = train(_cfg(synth_dataset, tmp_path / "full"))
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics == full
    for key in ("mask_ap", "mask_ap50", "box_ap", "epochs", "steps", "minutes", "images_per_s"):
        assert key in metrics
    assert 0.0 <= metrics["mask_ap"] <= 1.0
    assert metrics["steps"] == 2 * (24 // 4) and metrics["epochs"] == 2.0 and metrics["val_images"] == 4
    best = load_checkpoint(tmp_path / "full" / "best.pt")
    assert best.config.num_classes == len(best.categories) >= 5
    assert best.metrics["mask_ap"] == metrics["mask_ap"]

    # interrupted mid-epoch 1 (step 8 of 12), then resumed with a worker process: the same weights at the end
    part = tmp_path / "part"
    assert train(_cfg(synth_dataset, part, stop_at_step=8)) == {}
    assert read_checkpoint(part / "last.pt")["extra"]["train"]["state"]["step"] == 8
    assert not (part / "metrics.json").exists()
    resumed = train(_cfg(synth_dataset, part, resume=True, workers=1))
    assert resumed["steps"] == 12
    _assert_same_state(tmp_path / "full" / "last.pt", part / "last.pt")
    assert resumed["mask_ap"] == metrics["mask_ap"]

    with pytest.raises(BadInput, match="options changed"):
        train(_cfg(synth_dataset, part, resume=True, batch_size=8))


def test_bad_options_are_bad_input(synth_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        train(_cfg(synth_dataset, tmp_path / "a", epochs=None))
    with pytest.raises(BadInput):
        train(_cfg(synth_dataset, tmp_path / "b", input_size=100))
    with pytest.raises(BadInput):
        train(_cfg(synth_dataset, tmp_path / "c", resume=True))  # nothing to resume


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
         "MASTER_PORT": str(port)}
    )  # fmt: skip
    train(_cfg(Path(data), Path(out), epochs=1))


def test_ddp_two_processes_gloo(synth_dataset: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(synth_dataset), str(out)), nprocs=2, join=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["steps"] == (24 // 2) // (4 // 2)  # each rank sees half the images, per-rank batch 2
    assert metrics["epochs"] == 1.0
    assert load_checkpoint(out / "last.pt").extra["train"]["state"]["images"] == 24
