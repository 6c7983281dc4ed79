"""The answers' PNG writer (serving/png_writer.py): exact pixels, profile and XMP, read back
by Pillow, across strip boundaries."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving.png_writer import STRIP_ROWS, write_png
from serving.provenance import XMP_KEY, Provenance, srgb_icc
from tests.builders import EXAMPLES

XMP = Provenance("horse2zebra", "horse2zebra", "1").xmp()


@pytest.mark.parametrize(
    ("mode", "size"),
    [
        ("RGB", (256, 256)),
        ("RGBA", (300, 2 * STRIP_ROWS + 5)),  # three strips, the last a short one
        ("RGB", (1, 1)),
        ("RGBA", (999, 3)),
    ],
)
def test_pixels_profile_and_xmp_come_back_exactly(mode: str, size: tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), np.uint8)
    written = write_png(Image.fromarray(pixels, mode), srgb_icc(), XMP, XMP_KEY)
    with Image.open(io.BytesIO(written)) as image:
        image.load()
        assert (image.format, image.mode, image.size) == ("PNG", mode, size)
        assert np.array_equal(np.asarray(image), pixels)
        assert image.info["icc_profile"] == srgb_icc()
        assert image.info[XMP_KEY].encode() == XMP


def test_a_photo_compresses() -> None:
    with Image.open(EXAMPLES["horse"]) as photo:
        image = photo.convert("RGB")
    written = write_png(image, srgb_icc(), XMP, XMP_KEY)
    assert len(written) < 0.8 * image.width * image.height * 3  # deflate did its work


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "CMYK"])
def test_other_modes_are_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="RGB or RGBA"):
        write_png(Image.new(mode, (4, 4)), srgb_icc(), XMP, XMP_KEY)
