"""Prediction overlays: coloured translucent masks with class name and score, saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# A fixed palette so a class keeps its colour across images.
PALETTE = np.array(
    [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
        (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
    ],
    np.float32,
)  # fmt: skip


def draw_overlay(image: np.ndarray, instances, class_names: list[str], alpha: float = 0.5) -> Image.Image:
    """`image` (H,W,3 uint8 RGB) with each instance's mask tinted by class colour, its box and 'name score'."""
    canvas = image.astype(np.float32).copy()
    order = np.argsort(instances.scores)  # draw the most confident last (on top)
    crops = instances.crops  # built once: a property that makes a view per instance
    for i in order:
        colour = PALETTE[int(instances.labels[i]) % len(PALETTE)]
        x1, y1, x2, y2 = instances.windows[i]
        region, crop = canvas[y1:y2, x1:x2], crops[i]  # the mask is empty outside its window
        region[crop] = region[crop] * (1 - alpha) + colour * alpha
    out = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for i in order:
        colour = tuple(int(c) for c in PALETTE[int(instances.labels[i]) % len(PALETTE)])
        x1, y1, x2, y2 = (float(v) for v in instances.boxes[i])
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=1)
        label = int(instances.labels[i])
        name = class_names[label] if label < len(class_names) else str(label)
        text = f"{name} {float(instances.scores[i]):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        ty = max(0.0, y1 - (bottom - top) - 2)
        draw.rectangle([x1, ty, x1 + (right - left) + 2, ty + (bottom - top) + 2], fill=colour)
        draw.text((x1 + 1, ty), text, fill=(0, 0, 0), font=font)
    return out


def save_overlay(path: Path, image: np.ndarray, instances, class_names: list[str]) -> Path:
    """Draw the overlay and write it as PNG to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_overlay(image, instances, class_names).save(path, format="PNG")
    return path
