"""Images as a camera or an annotation tool writes them: EXIF orientation, grayscale, alpha, palette, 16-bit, CMYK."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.images import read_image


def _gradient(h: int = 12, w: int = 20) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * 255 // (h * w - 1)).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.stack([_gradient()] * 3, axis=2)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    Image.fromarray(pixels).save(tmp_path / "a.jpg", exif=exif, quality=100)
    image = read_image(tmp_path / "a.jpg")
    assert image.shape == (20, 12, 3)
    assert abs(int(image[0, -1, 0]) - int(pixels[0, 0, 0])) <= 3  # the stored top-left corner is now top-right


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "1", "LA"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    Image.fromarray(_gradient()).convert(mode).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.shape == (12, 20, 3) and image.dtype == np.uint8


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.fromarray(_gradient()).convert("P")
    img.info["transparency"] = 0
    img.save(tmp_path / "a.png", transparency=0)
    assert read_image(tmp_path / "a.png").shape == (12, 20, 3)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 12 * 20).reshape(12, 20).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image[..., 0], np.round(values / 257.0).astype(np.uint8))
    assert image.max() == 255 and len(np.unique(image)) > 200  # clipping would leave almost everything at 255


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.fromarray(np.stack([_gradient()] * 3, axis=2)).convert("CMYK").save(tmp_path / "a.jpg", quality=100)
    image = read_image(tmp_path / "a.jpg")
    assert image.shape == (12, 20, 3) and abs(int(image[-1, -1].mean()) - 255) < 20


def test_bad_files_are_one_line_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "text.png").write_text("not an image")
    Image.fromarray(_gradient()).save(tmp_path / "big.png")
    with pytest.raises(BadInput, match="not a readable image"):
        read_image(tmp_path / "text.png")
    with pytest.raises(BadInput, match="image not found"):
        read_image(tmp_path / "missing.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 240 pixels > 2 × 50: PIL's decompression-bomb guard
    with pytest.raises(BadInput, match="too large") as err:
        read_image(tmp_path / "big.png")
    assert "\n" not in str(err.value)
