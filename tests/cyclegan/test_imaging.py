import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.imaging import image_grid, image_to_tensor, split_alpha, tensor_to_image, to_rgb


def test_round_trip_is_exact() -> None:
    array = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tensor = image_to_tensor(Image.fromarray(array))
    assert tensor.shape == (3, 20, 30)
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_image(tensor)), array)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (8, 8), 128),
        lambda: Image.new("LA", (8, 8), (128, 10)),
        lambda: Image.new("RGBA", (8, 8), (1, 2, 3, 4)),
        lambda: Image.new("CMYK", (8, 8), (0, 0, 0, 0)),
        lambda: Image.new("1", (8, 8), 1),
        lambda: Image.new("F", (8, 8), 0.5),
    ],
)
def test_every_mode_becomes_rgb(make) -> None:  # type: ignore[no-untyped-def]
    assert to_rgb(make()).mode == "RGB"


def test_palette_with_transparency_gives_no_warning() -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([255, 0, 0] * 256)
    image.info["transparency"] = b"\x00" * 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 0, 0)


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    array = np.full((4, 4), 257 * 100, dtype=np.uint16)  # 100 in 8 bits
    image = Image.fromarray(array)
    assert image.mode == "I;16"
    rgb = to_rgb(image)
    assert rgb.getpixel((0, 0)) == (100, 100, 100)


def test_split_alpha() -> None:
    rgb, alpha = split_alpha(Image.new("RGBA", (4, 4), (10, 20, 30, 40)))
    assert rgb.mode == "RGB" and alpha is not None and alpha.getpixel((0, 0)) == 40
    rgb, alpha = split_alpha(Image.new("L", (4, 4), 9))
    assert rgb.getpixel((0, 0)) == (9, 9, 9) and alpha is None


def test_image_grid_layout() -> None:
    tiles = [torch.full((3, 4, 4), v) for v in (-1.0, 0.0, 1.0)]
    grid = image_grid([tiles, tiles])
    assert grid.size == (12, 8)
    assert grid.getpixel((0, 0)) == (0, 0, 0) and grid.getpixel((11, 7)) == (255, 255, 255)
