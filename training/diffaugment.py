"""DiffAugment (Zhao et al. 2020): differentiable augmentation of the discriminators' inputs.

The same random transforms are applied to real and fake images wherever a discriminator
sees them (its own step and the generators' adversarial term), so it cannot tell them apart
by the augmentation, and gradients flow back through the transforms to the generator. With
about a thousand images per domain this keeps the discriminator from memorising the set.

Images are (N, 3, H, W) in [-1, 1]; every transform is drawn per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F


def color(x: Tensor) -> Tensor:
    """Random brightness (±0.5), saturation (0..2x) and contrast (0.5..1.5x)."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to `ratio` of its size, filling with zeros."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    # Index a zero-padded copy: source pixel (row - dy, col - dx), shifted by the padding.
    src_rows = (rows - dy + 1).clamp(0, h + 1)
    src_cols = (cols - dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, src_rows, src_cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one random square of `ratio` times the image size in each image."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - size_h % 2, (n, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + 1 - size_w % 2, (n, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES: dict[str, Callable[[Tensor], Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def diff_augment(x: Tensor, policy: Sequence[str]) -> Tensor:
    """Apply the named transforms in order; an empty policy returns `x` unchanged."""
    for name in policy:
        x = POLICIES[name](x)
    return x
