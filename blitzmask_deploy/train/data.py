"""Training batches: augmented samples (`train_transform`, or a `mosaic_transform` of several) with their stride-4
targets, collated to tensors."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from blitzmask_deploy.data.targets import build_targets, collate_targets

MOSAIC_GRID = 2  # a mosaic tiles 2×2 samples


class TrainSet(Dataset):
    """Wraps a CocoDataset: sample i of epoch e is augmented with rng seeded by (seed, e, i), so it is reproducible
    whatever the worker count or a resume point. With probability `mosaic` the sample is a mosaic of image i and
    three others drawn by the same rng. Set `epoch` and `mosaic` before each epoch (workers are not persistent)."""

    def __init__(self, dataset, input_size: int, seed: int, stride: int = 4, mosaic: float = 0.0) -> None:
        self.dataset = dataset
        self.input_size = input_size
        self.seed = seed
        self.stride = stride
        self.mosaic = mosaic
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        from blitzmask_deploy.data.transforms import mosaic_transform, train_transform

        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.mosaic > 0 and rng.random() < self.mosaic:
            others = rng.integers(0, len(self.dataset), MOSAIC_GRID * MOSAIC_GRID - 1)
            samples = [self.dataset[int(i)] for i in (index, *others)]
            image, gt = mosaic_transform([(s.image, s.gt) for s in samples], self.input_size, rng)
        else:
            sample = self.dataset[index]
            image, gt = train_transform(sample.image, sample.gt, self.input_size, rng)
        masks, boxes, labels, crowd_masks = gt.masks, gt.boxes, gt.labels, None
        crowd = np.asarray(gt.iscrowd, bool)
        if crowd.any():  # indexing copies all the masks: only when there are crowd regions to set apart
            masks, boxes, labels, crowd_masks = masks[~crowd], boxes[~crowd], labels[~crowd], masks[crowd]
        targets = build_targets(
            masks, boxes, labels, self.dataset.num_classes, self.input_size, self.stride, crowd=crowd_masks
        )
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), targets


def lower_priority(worker_id: int) -> None:
    """DataLoader `worker_init_fn` for CPU training: the worker takes the lowest scheduling priority, so it runs in
    the gaps the training threads leave instead of preempting them (measured on 2 cores: 15–20 % more images/s)."""
    if hasattr(os, "nice"):
        os.nice(19)


def collate(batch: list) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """uint8 images (B,3,S,S) and padded target tensors (see data.targets.collate_targets)."""
    images = torch.stack([b[0] for b in batch])
    targets = {k: torch.from_numpy(v) for k, v in collate_targets([b[1] for b in batch]).items()}
    return images, targets


class ResumableSampler(torch.utils.data.Sampler):
    """DistributedSampler's order for one epoch (seeded by seed + epoch; this rank's share), from position `start`."""

    def __init__(self, n: int, *, seed: int, epoch: int, rank: int, world: int, start: int = 0) -> None:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
        self.indices = list(sampler)[start:]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
