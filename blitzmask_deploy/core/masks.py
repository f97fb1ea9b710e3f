"""Mask codecs: COCO RLE (compressed and uncompressed), polygons and tight boxes of bool masks.

The one place that encodes and decodes instance masks; every other part reads and writes masks through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.errors import BadInput


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (N,4) float32 of bool masks (N,H,W); x2/y2 are exclusive pixel edges."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if len(rows):
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """Compressed COCO RLE (counts as str) of bool masks (N,H,W)."""
    if len(masks) == 0:
        return []
    as_bytes = masks.view(np.uint8) if masks.dtype == bool else masks.astype(np.uint8)  # a view needs no copy
    return _ascii_counts(mask_utils.encode(np.asfortranarray(as_bytes.transpose(1, 2, 0))))


def runs_to_rle(runs: list[list[int]], height: int, width: int) -> list[dict]:
    """Compressed COCO RLE (counts as str) of (height, width) masks given as uncompressed run lengths
    (column-major, starting with background)."""
    if not runs:
        return []
    return _ascii_counts(mask_utils.frPyObjects([{"counts": c, "size": [height, width]} for c in runs], height, width))


def _ascii_counts(rles: list[dict]) -> list[dict]:
    """pycocotools' compressed counts as str (JSON-ready) instead of bytes."""
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def segmentation_to_rle(seg: Any, h: int, w: int) -> dict:
    """Compressed RLE of a polygon list, an uncompressed RLE or a compressed RLE segmentation."""
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, h, w)
    return seg


def check_compressed_rles(items: list[tuple[str, str | bytes, int]], path: Path | str) -> None:
    """BadInput for the first (where, counts, pixels) whose compressed RLE is corrupt or does not cover `pixels`."""
    if not items:
        return
    coverage = rle_strings_coverage([counts for _, counts, _ in items])
    wrong = np.flatnonzero(coverage != np.array([pixels for _, _, pixels in items]))
    if len(wrong):
        where, _, pixels = items[wrong[0]]
        raise BadInput(f"{path}: {where}: compressed RLE counts are corrupt or do not cover {pixels} pixels")


def rle_strings_coverage(strings: list[str | bytes]) -> np.ndarray:
    """Pixels covered by each compressed COCO RLE string (the sum of its runs), or -1 where it is corrupt.

    Decodes all strings at once, as pycocotools' rleFrString does one by one: each run is a little-endian
    sequence of 5-bit groups (char - 48; bit 0x20 = more groups follow; bit 0x10 of the last group = negative),
    and from the fourth run on a run is stored as the difference to the run two before it. A string is corrupt
    when it is truncated, holds characters outside '0'..'o', or yields a negative run. Checking this before
    pycocotools decodes a mask matters: its C decoder trusts the runs to fit the mask buffer.
    """
    n = len(strings)
    raw = [t.encode("ascii", "replace") if isinstance(t, str) else bytes(t) for t in strings]
    lengths = np.fromiter((len(r) for r in raw), np.int64, n)
    c = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int64) - 48
    bad = np.zeros(n, bool)
    if len(c) == 0:
        return np.zeros(n, np.int64)
    sid = np.repeat(np.arange(n), lengths)
    bad[sid[(c < 0) | (c > 63)]] = True
    last = (c & 0x20) == 0
    string_ends = np.cumsum(lengths)[lengths > 0] - 1
    bad[sid[string_ends[~last[string_ends]]]] = True
    last[string_ends] = True  # never let a run continue into the next string
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    k = np.arange(len(c)) - np.repeat(starts, ends - starts + 1)
    bad[sid[k > 11]] = True  # more than 60 bits
    x = np.add.reduceat((c & 0x1F) << np.minimum(5 * k, 60), starts)
    x -= np.where(c[ends] & 0x10, np.int64(1) << np.minimum(5 * (k[ends] + 1), 62), 0)
    rs = sid[ends]  # string of each run
    first_run = np.searchsorted(rs, np.arange(n))
    ri = np.arange(len(x)) - first_run[rs]  # index of each run within its string
    for sel in (ri % 2 == 1, (ri % 2 == 0) & (ri >= 2)):  # the two delta chains: odd runs, even runs from 2 on
        idx = np.flatnonzero(sel)
        if len(idx):
            v = x[idx]
            cs = np.cumsum(v)
            new_group = np.concatenate([[True], rs[idx][1:] != rs[idx][:-1]])
            group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(idx)), 0))
            x[idx] = cs - cs[group_start] + v[group_start]
    bad[rs[x < 0]] = True
    total = np.bincount(rs, weights=x, minlength=n).astype(np.int64)
    return np.where(bad, -1, total)
