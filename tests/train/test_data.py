"""Training samples: reproducible per (seed, epoch, index), plain or mosaic, with targets that match."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from blitzmask_deploy.core.masks import masks_to_boxes
from blitzmask_deploy.data.coco import GroundTruth
from blitzmask_deploy.data.targets import build_targets
from blitzmask_deploy.data.transforms import train_transform
from blitzmask_deploy.train.data import TrainSet, lower_priority


class _Squares:
    """Image i: one bright square of class i % 3 on black, at a place and size that depend on i."""

    num_classes = 3

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> SimpleNamespace:
        image = np.zeros((80, 80, 3), np.uint8)
        masks = np.zeros((1, 80, 80), bool)
        masks[0, 8 * i : 8 * i + 24, 4 * i : 4 * i + 30] = True
        image[masks[0]] = 255
        gt = GroundTruth(masks, masks_to_boxes(masks), np.array([i % 3]), np.zeros(1, bool))
        return SimpleNamespace(image=image, gt=gt)


def test_plain_sample_is_train_transform_seeded_by_seed_epoch_index() -> None:
    data = _Squares()
    trainset = TrainSet(data, 64, seed=3)
    trainset.epoch = 2
    image, targets = trainset[4]
    expected, gt = train_transform(data[4].image, data[4].gt, 64, np.random.default_rng([3, 2, 4]))
    torch.testing.assert_close(image, torch.from_numpy(expected.transpose(2, 0, 1).copy()))
    want = build_targets(gt.masks, gt.boxes, gt.labels, 3, 64)
    np.testing.assert_array_equal(targets.heatmap, want.heatmap)


def test_mosaic_sample_holds_four_images_and_is_reproducible() -> None:
    trainset = TrainSet(_Squares(), 64, seed=0, mosaic=1.0)
    counts = []
    for index in range(6):
        image, targets = trainset[index]
        again, _ = trainset[index]
        torch.testing.assert_close(image, again)
        counts.append(len(targets.labels))
        assert targets.heatmap.shape == (3, 16, 16)
        assert (targets.heatmap == 1).sum() == len(targets.labels)  # one peak per instance
    assert max(counts) == 4 and min(counts) >= 3  # a square may fall off its tile; most of the time none does
    first_epoch = trainset[0][0]
    trainset.epoch = 1
    assert not torch.equal(trainset[0][0], first_epoch)  # a new epoch draws new partners and placements


class _SquareAndCrowd(_Squares):
    """Image i of _Squares plus a crowd region of class 2 in its bottom-right corner."""

    def __getitem__(self, i: int) -> SimpleNamespace:
        sample = super().__getitem__(i)
        crowd = np.zeros((1, 80, 80), bool)
        crowd[0, 60:, 60:] = True
        masks = np.concatenate([sample.gt.masks, crowd])
        gt = GroundTruth(masks, masks_to_boxes(masks), np.array([i % 3, 2]), np.array([False, True]))
        return SimpleNamespace(image=sample.image, gt=gt)


def test_crowd_regions_get_no_targets() -> None:
    plain, with_crowd = TrainSet(_Squares(), 64, seed=1), TrainSet(_SquareAndCrowd(), 64, seed=1)
    for index in range(6):
        want, got = plain[index][1], with_crowd[index][1]
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.heatmap, want.heatmap)
        np.testing.assert_array_equal(got.masks, want.masks)


class _Niceness(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> int:
        return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities on this OS")
def test_lower_priority_makes_a_loader_worker_the_lowest_priority_process() -> None:
    loader = torch.utils.data.DataLoader(_Niceness(), num_workers=1, worker_init_fn=lower_priority)
    assert [int(n) for n in loader] == [19]
    assert os.nice(0) < 19  # the trainer itself is untouched
