"""The RAM cache of decoded training images: identical samples, shared by forked workers, refused when too big."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import blitzmask_deploy.data.cache as cache_module
from blitzmask_deploy.data.cache import SampleCache, cache_refusal
from blitzmask_deploy.data.coco import CocoDataset
from blitzmask_deploy.train.data import TrainSet, collate


@pytest.fixture()
def dataset(synth_dataset: Path) -> CocoDataset:
    """The fixture's train split with image 0's annotations removed (an image without instances)."""
    ann = synth_dataset / "annotations" / "instances_train.json"
    coco = json.loads(ann.read_text())
    first = coco["images"][0]["id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != first]
    return CocoDataset(coco, ann, synth_dataset / "images" / "train")


def _assert_same_sample(got, want) -> None:
    np.testing.assert_array_equal(got.image, want.image)
    assert got.gt.masks.dtype == bool and got.gt.masks.shape == want.gt.masks.shape
    np.testing.assert_array_equal(got.gt.masks, want.gt.masks)
    np.testing.assert_array_equal(got.gt.boxes, want.gt.boxes)
    np.testing.assert_array_equal(got.gt.labels, want.gt.labels)
    np.testing.assert_array_equal(got.gt.iscrowd, want.gt.iscrowd)
    assert (got.image_id, got.file) == (want.image_id, want.file)


def test_cached_samples_equal_the_datasets_when_filled_and_when_read(dataset: CocoDataset) -> None:
    cache = SampleCache(dataset)
    assert len(cache) == len(dataset) and cache.num_classes == dataset.num_classes
    assert len(dataset[0].gt) == 0 and len(dataset[1].gt) > 1
    for index in (0, 1, 5, len(dataset) - 1):
        want = dataset[index]
        _assert_same_sample(cache[index], want)  # decoded and stored
        _assert_same_sample(cache[index], want)  # read back from the cache
    with pytest.raises(ValueError, match="read-only"):
        cache[1].image[0, 0] = 0  # transforms get the cached pixels themselves and must not write them


def test_forked_workers_fill_one_cache_for_all(dataset: CocoDataset) -> None:
    cache = SampleCache(dataset)
    cached, plain = TrainSet(cache, 64, seed=0, mosaic=1.0), TrainSet(dataset, 64, seed=0, mosaic=1.0)
    loader = torch.utils.data.DataLoader(
        cached, batch_size=4, num_workers=2, collate_fn=collate, multiprocessing_context="fork"
    )
    for b, (images, targets) in enumerate(loader):
        want_images, want_targets = collate([plain[i] for i in range(4 * b, 4 * b + 4)])
        torch.testing.assert_close(images, want_images, rtol=0, atol=0)
        for key, value in want_targets.items():
            torch.testing.assert_close(targets[key], value, rtol=0, atol=0)
    assert cache._filled.all()  # what the workers decoded is in the parent's (shared) memory


def test_cache_is_refused_when_it_would_take_over_half_the_memory(
    dataset: CocoDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SampleCache(dataset)
    assert cache.nbytes >= sum(s.image.nbytes for s in (dataset[i] for i in range(len(dataset))))
    monkeypatch.setattr(cache_module, "available_memory", lambda: 2 * cache.nbytes + 1)
    assert cache_refusal(cache) is None
    assert "more than half" in cache_refusal(cache, ranks_on_host=2)
    monkeypatch.setattr(cache_module.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert "fork" in cache_refusal(cache)
