"""A RAM cache of decoded training images and masks, shared by the DataLoader's worker processes.

Decoding a JPEG and its instances' RLEs is most of what a sample costs (a mosaic decodes four images). The cache
keeps every image decoded once: pixels as they are, masks bit-packed (1 bit per pixel). Its buffers are one
anonymous shared memory map, allocated before the workers fork, so whatever any worker decodes is there for every
other worker and every later epoch (the trainer's workers are re-forked each epoch). Samples read from the cache
are bit-identical to the dataset's own.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
from pathlib import Path

import numpy as np

from blitzmask_deploy.data.coco import CocoDataset, Sample

MEMORY_SHARE = 0.5  # the caches of all ranks on a host may take at most this share of its available memory


class SampleCache:
    """`cache[i]` is `dataset[i]` (image and ground truth), decoded on first use into shared memory."""

    def __init__(self, dataset: CocoDataset) -> None:
        self.dataset = dataset
        shapes = [dataset.image_shape(i) for i in range(len(dataset))]
        image_bytes = [h * w * 3 for h, w, _ in shapes]
        mask_bytes = [n * h * _packed_width(w) for h, w, n in shapes]
        self._shapes = shapes
        self._image_at = np.concatenate([[0], np.cumsum(image_bytes)]).astype(np.int64)
        self._mask_at = np.concatenate([[0], np.cumsum(mask_bytes)]).astype(np.int64)
        n, images, masks = len(shapes), int(self._image_at[-1]), int(self._mask_at[-1])
        self._map = mmap.mmap(-1, max(1, n + images + masks))  # anonymous and shared: workers fork with it
        buffer = np.frombuffer(self._map, np.uint8)
        self._filled, self._images, self._masks = buffer[:n], buffer[n : n + images], buffer[n + images :]

    @property
    def nbytes(self) -> int:
        """Size of the cache's buffers."""
        return len(self._map)

    @property
    def num_classes(self) -> int:
        """The dataset's number of categories."""
        return self.dataset.num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        h, w, n = self._shapes[index]
        image = self._images[self._image_at[index] : self._image_at[index + 1]].reshape(h, w, 3)
        packed = self._masks[self._mask_at[index] : self._mask_at[index + 1]].reshape(n, h, _packed_width(w))
        if not self._filled[index]:
            sample = self.dataset[index]
            image[:] = sample.image
            packed[:] = np.packbits(sample.gt.masks, axis=2)
            self._filled[index] = 1  # after the data: a reader that sees the flag sees the pixels
            return sample
        masks = np.unpackbits(packed, axis=2, count=w).view(bool)
        image.flags.writeable = False  # the cached pixels themselves: transforms must copy, never write
        ds = self.dataset
        return Sample(image, ds.ground_truth(index, masks), ds.image_ids[index], ds.image_path(index))


def cache_refusal(cache: SampleCache, ranks_on_host: int = 1) -> str | None:
    """Why `cache` should not be used here (None when it should): the caches of all ranks on this host must fit in
    `MEMORY_SHARE` of the available memory (its pages are only taken as they fill), and workers must be able to
    fork (to share it)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork DataLoader workers to share it"
    need = cache.nbytes * ranks_on_host
    available = available_memory()
    if available is not None and need > MEMORY_SHARE * available:
        return f"it needs {need / 2**30:.1f} GiB, more than half of the {available / 2**30:.1f} GiB available"
    return None


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable; free pages elsewhere; None if unknown)."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _packed_width(width: int) -> int:
    return (width + 7) // 8
