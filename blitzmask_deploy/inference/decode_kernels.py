"""Compiled (numba) loops of decode: cross-class suppression, peaks, mask scores, mask pasting and RLE runs, each
one pass over the data it reads.

In numpy the same work takes some 60 small array operations per image, whose per-call overhead alone cost more
than 10 % of the tiny model's forward. The kernels compile on first use and are cached next to this file (or in
numba's user cache directory when that is read-only). Loops index only with their own range variables over
views: an index computed from data makes numba check it for wrap-around, which stops vectorisation (measured
12× slower peaks).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_CLASS_POWER = 7  # the largest power `suppress_other_classes` computes (three bits)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def suppress_other_classes(heatmap: np.ndarray, power: int, floor: np.float32) -> np.ndarray:
    """The (h, w, C) `heatmap` with every value x ≥ `floor` multiplied by (x / m)^`power` (0 to MAX_CLASS_POWER),
    m the largest value of its cell over the classes: a cell's strongest class keeps its score, weaker classes at
    the same cell drop. Values under `floor` are copied as they are (scaling only lowers a value, so peaks at or
    above `floor` come out the same as when every value is scaled).

    The power is built from the ratio's 1st, 2nd and 4th powers picked by power's bits: a loop of fixed length
    over the classes, which compiles to vector code (a loop of `power` multiplications per value did not; 30 %
    slower with 6 classes and with 80)."""
    h, w, c = heatmap.shape
    out = heatmap.copy()
    one = np.float32(1)
    for y in range(h):
        for x in range(w):
            cell, scaled = heatmap[y, x], out[y, x]
            top = cell[0]
            for k in range(1, c):
                top = max(top, cell[k])
            if top <= 0 or top < floor:  # nothing in this cell to scale
                continue
            inverse = one / top
            for k in range(c):
                value = cell[k]
                ratio = value * inverse if value >= floor else one
                square = ratio * ratio
                fourth = square * square
                scaled[k] = value * (
                    (ratio if power & 1 else one) * (square if power & 2 else one) * (fourth if power & 4 else one)
                )
    return out


@njit(cache=True, nogil=True)
def peak_indices(heatmap: np.ndarray, threshold: np.float32) -> np.ndarray:
    """Flat (y, x, class) indices, ascending, of the cells of the (h, w, C) `heatmap` that are ≥ `threshold` and
    peaks of their class's 3×3 neighbourhood: strictly above the 4 neighbours before them in raster order and at
    least the 4 after them. Scores are finite.

    The tie-break matters: without it a plateau of equal scores is all peaks, and int8 heatmaps (256 score
    levels) turn one object into several detections (measured: 5 points of mask AP lost by a trained tiny
    model)."""
    h, w, c = heatmap.shape
    n, s = w * c, (w + 2) * c  # a row's values; a padded row's
    padded = np.full((h + 2) * s, -np.inf, np.float32)
    for y in range(h):
        padded[(y + 1) * s + c : (y + 2) * s - c] = heatmap[y].reshape(-1)
    keep = np.empty(h * n, np.bool_)
    for y in range(h):
        at = (y + 1) * s + c
        v = padded[at : at + n]
        up_left, up, up_right = padded[at - s - c :], padded[at - s :], padded[at - s + c :]
        left, right = padded[at - c :], padded[at + c :]
        down_left, down, down_right = padded[at + s - c :], padded[at + s :], padded[at + s + c :]
        row = keep[y * n : (y + 1) * n]
        for j in range(n):
            x = v[j]
            row[j] = (
                (x >= threshold)
                & (x > up_left[j])
                & (x > up[j])
                & (x > up_right[j])
                & (x > left[j])
                & ~(right[j] > x)
                & ~(down_left[j] > x)
                & ~(down[j] > x)
                & ~(down_right[j] > x)
            )
    return np.flatnonzero(keep)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def mask_scores(
    coef: np.ndarray,
    basis: np.ndarray,
    windows: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray, np.ndarray],
    threshold: np.float32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each instance's mask logits coef[i] · basis (h, w, K) at the grid cells its window's pixels are resampled
    from (through the taps `rows` and `cols`: first cell, second cell, weight of the second), and its mask score:
    the mean probability (sigmoid) of those cells whose logit is above `threshold` (logit units); 0.0 when none
    is, or the window is empty. Returns the scores, all logits (each window's cells row-major, one window after
    another) and where each window's logits start, for `paste_crops`."""
    r0, r1 = rows[0], rows[1]
    c0, c1 = cols[0], cols[1]
    starts = np.zeros(len(windows), np.int64)
    total = 0
    for i in range(len(windows)):
        x1, y1, x2, y2 = windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3]
        starts[i] = total
        if x2 > x1 and y2 > y1:
            total += (r1[y2 - 1] + 1 - r0[y1]) * (c1[x2 - 1] + 1 - c0[x1])
    logits = np.empty(total, np.float32)
    scores = np.zeros(len(windows), np.float32)
    for i in range(len(windows)):
        x1, y1, x2, y2 = windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3]
        if x2 <= x1 or y2 <= y1:
            continue
        cells = basis[r0[y1] : r1[y2 - 1] + 1, c0[x1] : c1[x2 - 1] + 1]
        weights = coef[i]
        at, on, probability = starts[i], 0, np.float32(0)
        for r in range(cells.shape[0]):
            for c in range(cells.shape[1]):
                cell = cells[r, c]
                acc = np.float32(0)
                for k in range(len(weights)):
                    acc += weights[k] * cell[k]
                logits[at] = acc
                at += 1
                if acc > threshold:
                    on += 1
                    probability += np.float32(1) / (np.float32(1) + np.exp(-acc))
        if on:
            scores[i] = probability / on
    return scores, logits, starts


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def paste_crops(
    logits: np.ndarray,
    starts: np.ndarray,
    windows: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray, np.ndarray],
    threshold: np.float32,
) -> np.ndarray:
    """All crops, row-major, one after another: window i's (x1, y1, x2, y2 with x2 ≥ x1, y2 ≥ y1) mask logits at
    its grid cells (`mask_scores`' logits from `starts[i]`), resampled bilinearly through the taps `rows` and
    `cols` (per output pixel: first cell, second cell, weight of the second) and compared with `threshold` (logit
    units).
    Columns are resampled first, on the window's few cell rows; then each output row blends two of them."""
    r0, r1, rw = rows
    c0, c1, cw = cols
    out = np.empty(((windows[:, 3] - windows[:, 1]) * (windows[:, 2] - windows[:, 0])).sum(), np.bool_)
    at = 0
    for i in range(len(windows)):
        x1, y1, x2, y2 = windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3]
        if x2 <= x1 or y2 <= y1:
            continue
        top, left = r0[y1], c0[x1]
        cell_rows, cell_cols = r1[y2 - 1] + 1 - top, c1[x2 - 1] + 1 - left
        grid = logits[starts[i] : starts[i] + cell_rows * cell_cols].reshape(cell_rows, cell_cols)
        first, second, weight = c0[x1:x2], c1[x1:x2], cw[x1:x2]
        across = np.empty((cell_rows, x2 - x1), np.float32)  # each cell row resampled to the window's columns
        for r in range(cell_rows):
            line, resampled = grid[r], across[r]
            for x in range(x2 - x1):
                resampled[x] = line[first[x] - left] * (np.float32(1) - weight[x]) + line[second[x] - left] * weight[x]
        for y in range(y1, y2):
            above, below, wb = across[r0[y] - top], across[r1[y] - top], rw[y]
            wa = np.float32(1) - wb
            row = out[at : at + x2 - x1]
            for x in range(x2 - x1):
                row[x] = above[x] * wa + below[x] * wb > threshold
            at += x2 - x1
    return out


@njit(cache=True, nogil=True)
def rle_runs(crop_pixels: np.ndarray, windows: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Uncompressed COCO RLE counts of (height, width) masks given as crops (`crop_pixels`: each window's pixels,
    row-major, one window after another) that are empty outside their windows. Returns all counts, one mask
    after another, and the (N+1,) offsets of each mask's counts. Runs are column-major over the full image and
    start with background, as pycocotools writes them."""
    widths = windows[:, 2] - windows[:, 0]
    sizes = (windows[:, 3] - windows[:, 1]) * widths
    counts = np.empty(sizes.sum() + widths.sum() + len(windows), np.int64)  # ≤ a run per pixel, column end, mask
    offsets = np.zeros(len(windows) + 1, np.int64)
    at, n = 0, 0
    for i in range(len(windows)):
        x1, y1, x2, y2 = windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3]
        crop = crop_pixels[at : at + sizes[i]].reshape(y2 - y1, x2 - x1)
        last, inside = 0, False  # where the current run began; whether it is foreground
        for x in range(x2 - x1):
            column = crop[:, x]
            for y in range(y2 - y1):
                if column[y] != inside:
                    position = (x1 + x) * height + y1 + y
                    counts[n] = position - last
                    n += 1
                    last, inside = position, column[y]
            end = (x1 + x) * height + y2  # the pixel after the column's part of the window
            joins_next = y1 == 0 and y2 == height and x < x2 - x1 - 1  # the next column goes on from here
            if inside and end < height * width and not joins_next:
                counts[n] = end - last
                n += 1
                last, inside = end, False
        counts[n] = height * width - last
        n += 1
        offsets[i + 1] = n
        at += sizes[i]
    return counts[:n].copy(), offsets
