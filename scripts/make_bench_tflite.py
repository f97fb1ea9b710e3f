"""Write a small conv-net .tflite for benchmark tests and `make bench` (needs torch + litert-torch).

Usage: python scripts/make_bench_tflite.py (OUT.tflite | --cached) [--size 64] [--channels 16]
`--cached` builds into .cache/bench-models/ once (keyed by size, channels and this script's hash) and prints
the path.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench-models"


def build(out: Path, size: int = 64, channels: int = 16) -> Path:
    """Convert a few 3×3 convs (NHWC input 1×size×size×3) to `out` with litert-torch."""
    import litert_torch
    import torch
    from torch import nn

    torch.manual_seed(0)
    c = channels
    net = nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1), nn.ReLU6(),
        nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, 2 * c, 1), nn.ReLU6(),
        nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU6(),
        nn.Conv2d(2 * c, 8, 1), nn.Sigmoid(),
    )  # fmt: skip
    module = litert_torch.to_channel_last_io(net.eval(), args=[0], outputs=[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    litert_torch.convert(module, (torch.rand(1, size, size, 3),)).export(str(out))
    return out


def cached(size: int = 64, channels: int = 16) -> Path:
    """The cached model for (size, channels), built when missing."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    out = CACHE / f"conv{size}x{channels}-{digest}.tflite"
    if not out.exists():
        tmp = build(out.with_suffix(f".{digest}.tmp"), size, channels)
        tmp.replace(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--cached", action="store_true", help="Build into the cache once and print its path.")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    ns = parser.parse_args()
    if ns.cached == (ns.out is not None):
        parser.error("give OUT or --cached")
    print(cached(ns.size, ns.channels) if ns.cached else build(ns.out, ns.size, ns.channels))
