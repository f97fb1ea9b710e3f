"""Prediction overlays: each mask tinted in its class colour, only where the mask is."""

from __future__ import annotations

import numpy as np

from blitzmask_deploy.inference.decode import Instances
from blitzmask_deploy.inference.overlay import PALETTE, draw_overlay


def test_overlay_tints_exactly_the_mask_pixels() -> None:
    image = np.full((40, 60, 3), 100, np.uint8)
    crop = np.zeros((10, 20), bool)
    crop[2:8, 5:15] = True
    inst = Instances(
        crop_pixels=crop.ravel(),
        windows=np.array([[30, 20, 50, 30]]),
        image_size=(40, 60),
        boxes=np.array([[0, 0, 60, 40]], np.float32),  # box drawn on the border, away from the mask
        scores=np.array([0.9], np.float32),
        labels=np.array([1]),
    )
    out = np.asarray(draw_overlay(image, inst, ["a", "b"], alpha=0.5)).astype(int)
    tinted = (100 * 0.5 + PALETTE[1] * 0.5).astype(int)  # the overlay truncates to uint8
    np.testing.assert_array_equal(out[22:28, 35:45].reshape(-1, 3), np.tile(tinted, (60, 1)))
    assert (out[20:22, 30:50] == 100).all() and (out[30:38, 30:50] == 100).all()
