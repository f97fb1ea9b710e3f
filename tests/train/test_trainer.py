"""Tiny training runs on the synthetic fixture: outputs, exact resume, 2-process DDP (gloo)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from blitzmask_deploy.core.checkpoints import read_checkpoint
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.train.config import TrainConfig
from blitzmask_deploy.train.trainer import train

pytestmark = pytest.mark.slow


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=data, model="blitzmask-tiny", out=out, epochs=2, batch_size=4, lr=1e-2, optimizer="adamw", input_size=64,
        workers=0,
        progress=False, eval_max_images=4, threads=1,
    )  # fmt: skip
    return TrainConfig(**(base | kw))


def _assert_same_state(a: Path, b: Path) -> None:
    pa, pb = read_checkpoint(a), read_checkpoint(b)
    for key, value in pa.state_dict.items():
        torch.testing.assert_close(value, pb.state_dict[key], rtol=0, atol=0, msg=f"EMA {key}")
    ta, tb = pa.extra["train"], pb.extra["train"]
    for key, value in ta["model"].items():
        torch.testing.assert_close(value, tb["model"][key], rtol=0, atol=0, msg=f"model {key}")
    assert ta["state"]["step"] == tb["state"]["step"]
    assert ta["ema_updates"] == tb["ema_updates"]
    for sa, sb in zip(ta["optimizer"]["state"].values(), tb["optimizer"]["state"].values(), strict=True):
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=0, atol=0)


def test_train_writes_metrics_and_checkpoints_and_resumes_exactly(synth_dataset: Path, tmp_path: Path) -> None:
    # 3 epochs of 6 steps; mosaics stop for epochs starting after 60 % of training: epochs 0 and 1 have them, 2 not
    full = train(_cfg(synth_dataset, tmp_path / "full", epochs=3, close_mosaic=0.4))
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics == full
    for key in ("mask_ap", "mask_ap50", "box_ap", "epochs", "steps", "minutes", "images_per_s"):
        assert key in metrics
    assert 0.0 <= metrics["mask_ap"] <= 1.0
    assert metrics["steps"] == 3 * (24 // 4) and metrics["epochs"] == 3.0 and metrics["val_images"] == 4
    assert read_checkpoint(tmp_path / "full" / "last.pt").extra["train"]["state"]["mosaic"] == 0.0
    best = read_checkpoint(tmp_path / "full" / "best.pt")
    assert best.config["num_classes"] == len(best.categories) >= 5
    assert best.metrics["mask_ap"] == metrics["mask_ap"]

    # interrupted late in epoch 1 (step 11 of 18, past 60 %: its mosaics must go on), then resumed with a worker
    # process: the same weights at the end
    part = tmp_path / "part"
    options = dict(epochs=3, close_mosaic=0.4)
    assert train(_cfg(synth_dataset, part, stop_at_step=11, **options)) == {}
    state = read_checkpoint(part / "last.pt").extra["train"]["state"]
    assert state["step"] == 11 and state["mosaic"] == 1.0
    assert not (part / "metrics.json").exists()
    resumed = train(_cfg(synth_dataset, part, resume=True, workers=1, **options))
    assert resumed["steps"] == 18
    _assert_same_state(tmp_path / "full" / "last.pt", part / "last.pt")
    assert resumed["mask_ap"] == metrics["mask_ap"]

    with pytest.raises(BadInput, match="options changed"):
        train(_cfg(synth_dataset, part, resume=True, batch_size=8, **options))
    with pytest.raises(BadInput, match="options changed"):
        train(_cfg(synth_dataset, part, resume=True, epochs=3))  # close_mosaic differs


def test_bad_options_are_bad_input(synth_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        train(_cfg(synth_dataset, tmp_path / "a", epochs=None))
    with pytest.raises(BadInput):
        train(_cfg(synth_dataset, tmp_path / "b", input_size=100))
    with pytest.raises(BadInput):
        train(_cfg(synth_dataset, tmp_path / "c", resume=True))  # nothing to resume
    with pytest.raises(BadInput, match="between 0 and 1"):
        train(_cfg(synth_dataset, tmp_path / "d", mosaic=1.5))


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
    assert read_checkpoint(out / "last.pt").extra["train"]["state"]["images"] == 24


def _record_loaders(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Patch the trainer's DataLoader to record each one's worker options and dataset."""
    import blitzmask_deploy.train.trainer as loop

    seen = []

    class Recording(torch.utils.data.DataLoader):
        def __init__(self, dataset, *args, **kwargs) -> None:
            seen.append(kwargs | {"source": dataset.dataset})
            super().__init__(dataset, *args, **kwargs)

    monkeypatch.setattr(loop, "DataLoader", Recording)
    return seen


def test_cpu_training_forks_lowest_priority_workers_over_the_ram_cache(
    synth_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import blitzmask_deploy.train.trainer as loop
    from blitzmask_deploy.data.cache import SampleCache

    seen = _record_loaders(monkeypatch)
    train(_cfg(synth_dataset, tmp_path / "run", workers=1, stop_at_step=1))
    assert seen and all(kw["worker_init_fn"] is loop.lower_priority for kw in seen)
    assert all(isinstance(kw["source"], SampleCache) and kw["multiprocessing_context"] == "fork" for kw in seen)


def test_training_reads_the_files_without_cache_or_when_it_does_not_fit(
    synth_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import blitzmask_deploy.data.cache as cache_module
    from blitzmask_deploy.data.coco import CocoDataset

    seen = _record_loaders(monkeypatch)
    train(_cfg(synth_dataset, tmp_path / "off", workers=1, stop_at_step=1, cache=False))
    assert "not caching" not in capsys.readouterr().err
    monkeypatch.setattr(cache_module, "available_memory", lambda: 1024)
    train(_cfg(synth_dataset, tmp_path / "small", workers=1, stop_at_step=1))
    err = capsys.readouterr().err
    assert "not caching the training images in RAM: it needs" in err and len(err.strip().splitlines()) == 1
    assert len(seen) == 2 and all(type(kw["source"]) is CocoDataset for kw in seen)
    assert all(kw["multiprocessing_context"] is None for kw in seen)
