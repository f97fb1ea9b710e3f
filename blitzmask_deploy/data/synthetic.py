"""Procedural COCO instance-segmentation data: textured shapes on textured backgrounds.

Each image is a crop of a real photograph or texture (scikit-image's bundled images, rotated, flipped and
tinted) with 0–15 shapes pasted on it. The class of a shape is its geometry (ellipse, triangle, square, star,
ring with a hole, thin bar); its fill is another random, tinted texture, so only the shape tells the classes
apart. Later shapes occlude earlier ones; masks are the visible parts and instances with fewer than
`MIN_VISIBLE_PX` visible pixels are removed (also from the picture). Sizes are log-uniform so that COCO
small (< 32²), medium and large (≥ 96²) instances all occur at 320×320.

Every image is a pure function of (seed, split, index): train and val come from disjoint seed streams and
the output does not depend on the number of worker processes.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tqdm import tqdm

from blitzmask_deploy.core.folders import check_writable, replace_folder, sibling
from blitzmask_deploy.core.masks import masks_to_rle

CATEGORIES: list[dict] = [
    {"id": i + 1, "name": name, "supercategory": "shape"}
    for i, name in enumerate(["ellipse", "triangle", "square", "star", "ring", "bar"])
]
# scikit-image's bundled pictures; not "coins": its unlabelled round objects would look like the ellipse class
TEXTURES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "camera",
    "moon",
    "motorcycle_left",
    "ihc",
)
SPLITS = {"train": 0, "val": 1}
MAX_INSTANCES = 15
MIN_VISIBLE_PX = 20
JPEG_QUALITY = 95
_PARALLEL_MIN_IMAGES = 64
MAX_SIZE = 4096  # pixels: a larger image side is a typo
MAX_WORKERS = 256


@lru_cache(maxsize=4)
def texture_bank(size: int) -> tuple[np.ndarray, ...]:
    """The source textures as RGB uint8 arrays whose shorter side is at least `size` (cached per size)."""
    # scikit-image's bundled images, read directly: importing skimage.data/io would cost a second
    data_dir = Path(importlib.util.find_spec("skimage").origin).parent / "data"
    bank = []
    for name in TEXTURES:
        with Image.open(next(data_dir.glob(f"{name}.*"))) as im:
            img = np.asarray(im.convert("RGB"))
        short = min(img.shape[:2])
        if short < size:
            scale = size / short
            w, h = round(img.shape[1] * scale + 0.5), round(img.shape[0] * scale + 0.5)
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
        bank.append(np.ascontiguousarray(img))
    return tuple(bank)


def _texture_crop(rng: np.random.Generator, bank: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """A random `size`×`size` view of a random texture, randomly rotated by a multiple of 90° and flipped."""
    tex = bank[rng.integers(len(bank))]
    y = rng.integers(tex.shape[0] - size + 1)
    x = rng.integers(tex.shape[1] - size + 1)
    crop = np.rot90(tex[y : y + size, x : x + size], k=int(rng.integers(4)))
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _tint(pixels: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Blend uint8 RGB pixels (..., 3) towards a random colour and rescale each channel (a lookup table)."""
    colour = rng.uniform(0, 255, size=(3, 1))
    gain = rng.uniform(0.6, 1.3, size=(3, 1))
    alpha = rng.uniform(strength * 0.5, strength)
    lut = np.clip(np.arange(256, dtype=np.float32) * gain * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    out = np.empty(pixels.shape, dtype=np.uint8)
    for c in range(3):
        np.take(lut[c], pixels[..., c], out=out[..., c])
    return out


def _outline(kind: str, r: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (V,2) as (x, y) around the origin of one shape's outline, and of its hole for rings (else None)."""
    theta = rng.uniform(0, 2 * np.pi)
    if kind in ("ellipse", "ring"):
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        squash = rng.uniform(0.5, 1.0) if kind == "ellipse" else rng.uniform(0.75, 1.0)
        xy = np.stack([r * np.cos(t), r * squash * np.sin(t)], axis=1)
        hole = xy * rng.uniform(0.45, 0.65) if kind == "ring" else None
    elif kind == "triangle":
        angles = np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(-0.25, 0.25, 3)
        xy, hole = r * np.stack([np.cos(angles), np.sin(angles)], axis=1), None
    elif kind == "square":
        angles = np.arange(4) * np.pi / 2 + np.pi / 4
        xy, hole = 0.85 * r * np.stack([np.cos(angles), np.sin(angles)], axis=1), None
    elif kind == "star":
        n = int(rng.integers(5, 7))
        angles = np.arange(2 * n) * np.pi / n
        radii = np.where(np.arange(2 * n) % 2 == 0, r, r * rng.uniform(0.38, 0.5))
        xy, hole = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), None
    else:  # bar: a thin rectangle, length 2r, width 2r/aspect (at least 3 px)
        half_w = max(r / rng.uniform(4.0, 7.0), 1.5)
        xy, hole = np.array([[r, half_w], [r, -half_w], [-r, -half_w], [-r, half_w]]), None
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    return xy @ rot, None if hole is None else hole @ rot


def _rasterise(xy: np.ndarray, hole: np.ndarray | None, size: int) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Fill an outline (image coordinates) within its clipped bounding box: (window slices, bool mask) or None."""
    x0, y0 = np.maximum(np.floor(xy.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(xy.max(axis=0)).astype(int) + 1, size)
    if x1 <= x0 or y1 <= y0:
        return None
    canvas = Image.new("L", (int(x1 - x0), int(y1 - y0)), 0)
    pen = ImageDraw.Draw(canvas)
    pen.polygon([tuple(p) for p in (xy - (x0, y0)).tolist()], fill=1)
    if hole is not None:
        pen.polygon([tuple(p) for p in (hole - (x0, y0)).tolist()], fill=0)
    return (slice(y0, y1), slice(x0, x1)), np.asarray(canvas, dtype=bool)


def _render_owner(shapes: list, keep: list[int], size: int) -> np.ndarray:
    """Paint the kept shapes in order into an owner map (0 = background, i+1 = shape i)."""
    owner = np.zeros((size, size), dtype=np.uint8)
    for i in keep:
        window, local = shapes[i]
        owner[window][local] = i + 1
    return owner


def render_image(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One synthetic image: (RGB uint8 (size,size,3), visible masks bool (N,size,size), category ids (N,))."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    bank = texture_bank(size)
    image = _tint(_texture_crop(rng, bank, size), rng, strength=0.3)

    count = int(rng.integers(0, MAX_INSTANCES + 1))
    radii = np.sort(size * np.exp(rng.uniform(np.log(0.025), np.log(0.42), count)))[::-1]  # big shapes first
    kinds = rng.integers(len(CATEGORIES), size=count)
    shapes, cats = [], []
    for kind, r in zip(kinds, radii, strict=True):
        xy, hole = _outline(CATEGORIES[kind]["name"], r, rng)
        centre = rng.uniform(0, size, 2)
        shape = _rasterise(xy + centre, None if hole is None else hole + centre, size)
        if shape is not None:
            shapes.append(shape)
            cats.append(int(kind) + 1)

    keep = list(range(len(shapes)))
    owner = _render_owner(shapes, keep, size)
    visible = np.bincount(owner.ravel(), minlength=len(shapes) + 1)[1:]
    if (visible < MIN_VISIBLE_PX).any():
        # dropping a shape only uncovers pixels of the others, so one re-render is stable
        keep = [i for i in keep if visible[i] >= MIN_VISIBLE_PX]
        owner = _render_owner(shapes, keep, size)

    for i in keep:
        window, _ = shapes[i]
        sel = owner[window] == i + 1
        h, w = sel.shape
        tex = bank[rng.integers(len(bank))]
        y, x = rng.integers(tex.shape[0] - h + 1), rng.integers(tex.shape[1] - w + 1)
        fill = tex[y : y + h, x : x + w][:: rng.choice([-1, 1]), :: rng.choice([-1, 1])]
        image[window][sel] = _tint(fill[sel], rng, strength=0.7)
    ids = np.array([i + 1 for i in keep], dtype=np.uint8)
    masks = (ids[:, None, None] == owner.T[None]).transpose(0, 2, 1)  # (N,H,W) view, Fortran-friendly for RLE
    return image, masks, [cats[i] for i in keep]


def _make_one(job: tuple[int, str, int, int, str]) -> tuple[dict, list[dict]]:
    """Render, write and annotate one image; returns its COCO image entry and annotations (ids unset)."""
    seed, split, index, size, out_dir = job
    image, masks, cats = render_image(seed, split, index, size)
    file_name = f"{index + 1:06d}.jpg"
    Image.fromarray(image).save(os.path.join(out_dir, file_name), quality=JPEG_QUALITY)
    image_id = index + 1
    anns = []
    rles = masks_to_rle(masks)
    if rles:
        boxes = mask_utils.toBbox(rles)
        areas = mask_utils.area(rles)
        for rle, cat, box, area in zip(rles, cats, boxes, areas, strict=True):
            anns.append(
                {
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": rle,
                    "area": float(area),
                    "bbox": [float(v) for v in box],
                    "iscrowd": 0,
                }
            )
    return {"id": image_id, "file_name": file_name, "width": size, "height": size}, anns


def _write_split(root: Path, split: str, n: int, size: int, seed: int, workers: int, progress: bool) -> Path:
    out_dir = root / "images" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, split, i, size, str(out_dir)) for i in range(n)]
    bar = tqdm(total=n, desc=f"synth {split}", unit="img", file=sys.stderr, disable=None if progress else True)
    images, annotations = [], []

    def collect(results: Iterable[tuple[dict, list[dict]]]) -> None:
        for entry, anns in results:
            images.append(entry)
            for ann in anns:
                ann["id"] = len(annotations) + 1
                annotations.append(ann)
            bar.update(1)

    texture_bank(size)  # load before forking so workers share it
    if workers > 1 and n >= _PARALLEL_MIN_IMAGES:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            collect(pool.imap(_make_one, jobs, chunksize=8))
    else:
        collect(map(_make_one, jobs))
    bar.close()
    ann_path = root / "annotations" / f"instances_{split}.json"
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    coco = {
        "info": {"description": f"BlitzMask procedural shapes, split={split}, seed={seed}, size={size}"},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    ann_path.write_text(json.dumps(coco))
    return ann_path


def generate_dataset(
    root: Path,
    *,
    train: int,
    val: int,
    size: int = 320,
    seed: int = 0,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write a procedural COCO dataset at `root` (images/{train,val}, annotations/instances_*.json), replacing
    whatever `root` held; return root. The dataset is built in a hidden sibling folder and swapped in, so an
    interrupted run leaves no half-written dataset.

    `workers` processes render in parallel (default: up to 2, the CPU count); the output is identical for any
    number of workers.
    """
    from blitzmask_deploy.core.errors import BadInput

    if train < 0 or val < 0:
        raise BadInput(f"image counts must be >= 0 (got train={train}, val={val})")
    if not 32 <= size <= MAX_SIZE:
        raise BadInput(f"image size must be from 32 to {MAX_SIZE} (got {size})")
    if seed < 0:
        raise BadInput(f"the seed must be >= 0 (got {seed})")
    if workers is not None and not 0 <= workers <= MAX_WORKERS:
        raise BadInput(f"workers must be from 0 to {MAX_WORKERS} (got {workers})")
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    root = Path(root)
    check_writable(root, "output", beside=True)
    staging = sibling(root.resolve(), "synth")
    try:
        for split, n in (("train", train), ("val", val)):
            _write_split(staging, split, n, size, seed, workers, progress)
        replace_folder(root, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def summarize_dataset(root: Path) -> dict:
    """Counts per split of a generated dataset: images, instances, per category and per COCO size range."""
    root = Path(root)
    splits = {}
    for split in SPLITS:
        coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        areas = np.array([a["area"] for a in coco["annotations"]], dtype=np.float64)
        names = {c["id"]: c["name"] for c in coco["categories"]}
        per_cat = dict.fromkeys(names.values(), 0)
        for ann in coco["annotations"]:
            per_cat[names[ann["category_id"]]] += 1
        splits[split] = {
            "images": len(coco["images"]),
            "instances": len(areas),
            "sizes": [
                int((areas < 32**2).sum()),
                int(((areas >= 32**2) & (areas < 96**2)).sum()),
                int((areas >= 96**2).sum()),
            ],
            "per_category": per_cat,
        }
    return {"root": str(root), "splits": splits}
