"""Images in unusual modes are read with their real brightness (issue 21)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oodbench.data.sources import to_rgb


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_grey_png_keeps_its_brightness(tmp_path, mode):
    """A 16-bit PNG used to come out pure white: convert("RGB") clips 16-bit values."""
    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1024).astype(np.uint16)  # 0..64512
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as img:
        img.load()
        image = img if mode == "I;16" else img.convert("I")
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    expected = np.rint(ramp / 257.0)
    assert np.abs(rgb[..., 0].astype(float) - expected).max() <= 1
    assert rgb.mean() < 140  # not white


def test_8_bit_images_are_unchanged():
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(image))
    grey = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4))
    assert np.array_equal(np.asarray(to_rgb(grey))[..., 1], np.asarray(grey))
