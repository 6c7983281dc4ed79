"""Image <-> tensor conversion shared by training, evaluation and serving.

Tensors are (3, H, W) or (N, 3, H, W) float32 in [-1, 1]; images are Pillow images.
`to_rgb` turns every mode Pillow reads (greyscale, palette, CMYK, 16-bit, with alpha) into
plain RGB without warnings, so no stage has to special-case a file. `served_resolution` is
the one rule for the side a package's images are run at (serving, evaluate, compile verify),
`psnr_db` the one PSNR of whole arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cyclegan.generator_config import SIZE_MULTIPLE

if TYPE_CHECKING:  # the tensor helpers import torch themselves; the rest needs only Pillow
    import torch


def served_resolution(native_resolution: int) -> int:
    """The square side a package's images are run at: its native resolution rounded down to a
    multiple of SIZE_MULTIPLE (the generator halves twice), so 286 -> 284 and 256 -> 256."""
    return native_resolution - native_resolution % SIZE_MULTIPLE


def psnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """PSNR in dB of images in [-1, 1] (a peak-to-peak range of 2), over the whole arrays;
    inf when they are equal."""
    mse = float(np.mean((reference.astype(np.float64) - other) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(4.0 / mse))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB; alpha is dropped (use `split_alpha` to keep it)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: Pillow's own convert clips instead of scaling.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or values.max() > 255 else 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        # Going through RGBA avoids Pillow's "palette images with transparency" warning.
        image = image.convert("RGBA")
    return image.convert("RGB")


def split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(RGB image, alpha channel or None) for any mode."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return to_rgb(image), None
    rgba = image.convert("RGBA")
    return rgba.convert("RGB"), rgba.getchannel("A")


def image_to_array(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> (3, H, W) float32 in [-1, 1], in numpy (for runtimes without torch)."""
    array = np.asarray(to_rgb(image), dtype=np.float32)  # (H, W, 3) in [0, 255]
    return np.ascontiguousarray(array.transpose(2, 0, 1)) / 127.5 - 1.0


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB Pillow image -> (3, H, W) float32 in [-1, 1]."""
    import torch

    array = np.asarray(to_rgb(image), dtype=np.float32)  # (H, W, 3) in [0, 255]
    return torch.from_numpy(array).permute(2, 0, 1).div(127.5).sub(1.0).contiguous()


def tensor_to_array(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    import torch

    scaled = (tensor.detach().float().clamp(-1, 1).add(1.0).mul(127.5)).round()
    return scaled.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB Pillow image."""
    return Image.fromarray(tensor_to_array(tensor), mode="RGB")


def image_grid(rows: list[list[torch.Tensor]]) -> Image.Image:
    """A grid of equal-sized (3, H, W) tensors in [-1, 1], one list per row."""
    import torch

    row_tensors = [torch.cat([t.detach().cpu() for t in row], dim=2) for row in rows]
    return tensor_to_image(torch.cat(row_tensors, dim=1))
