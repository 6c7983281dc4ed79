"""The CycleGAN objective: adversarial (LSGAN, vanilla or hinge), cycle and identity losses."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

GanLoss = Literal["lsgan", "vanilla", "hinge"]


def generator_gan_loss(kind: GanLoss, fake_scores: Tensor) -> Tensor:
    """What the generator minimises: the discriminator should call its fakes real."""
    if kind == "lsgan":
        return F.mse_loss(fake_scores, torch.ones_like(fake_scores))
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    if kind == "hinge":
        return -fake_scores.mean()
    raise ValueError(f"unknown gan loss {kind!r}")


def discriminator_loss(kind: GanLoss, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """(real term + fake term) * 0.5, as the reference halves D's objective."""
    if kind == "lsgan":
        real = F.mse_loss(real_scores, torch.ones_like(real_scores))
        fake = F.mse_loss(fake_scores, torch.zeros_like(fake_scores))
    elif kind == "vanilla":
        real = F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
        fake = F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
    elif kind == "hinge":
        real = F.relu(1.0 - real_scores).mean()
        fake = F.relu(1.0 + fake_scores).mean()
    else:
        raise ValueError(f"unknown gan loss {kind!r}")
    return (real + fake) * 0.5


def cycle_loss(real: Tensor, reconstructed: Tensor) -> Tensor:
    """L1 between x and F(G(x))."""
    return F.l1_loss(reconstructed, real)


def identity_loss(real: Tensor, same: Tensor) -> Tensor:
    """L1 between y and G(y): a generator fed its target domain should leave it alone."""
    return F.l1_loss(same, real)
