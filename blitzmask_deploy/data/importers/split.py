"""Deterministic train/val split by file name: no random state, the same answer on every machine and run."""

from __future__ import annotations

import hashlib


def name_fraction(name: str) -> float:
    """A number in [0, 1) that depends only on `name` (the first 8 bytes of its SHA-1)."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2.0**64


def split_by_name(names: list[str], val_fraction: float) -> dict[str, str]:
    """ "train" or "val" for each name: val when its `name_fraction` is below `val_fraction`.

    An image's split depends on its own name only, so adding images never moves the others; when there are two
    names or more and 0 < val_fraction < 1, each split gets at least one (the name closest to the threshold).
    """
    splits = {n: "val" if name_fraction(n) < val_fraction else "train" for n in names}
    if len(names) >= 2 and 0 < val_fraction < 1:
        ordered = sorted(names, key=name_fraction)
        if "val" not in splits.values():
            splits[ordered[0]] = "val"
        if "train" not in splits.values():
            splits[ordered[-1]] = "train"
    return splits
