"""The CycleGAN objective: adversarial (LSGAN, vanilla or hinge), cycle, identity and content.

Scores are one tensor (a PatchGAN's map) or a list of them (the projected discriminator's
scales); a list's loss is the mean of its scales' losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

GanLoss = Literal["lsgan", "vanilla", "hinge"]


Scores = Tensor | Sequence[Tensor]


def generator_gan_loss(kind: GanLoss, fake_scores: Scores) -> Tensor:
    """What the generator minimises: the discriminator should call its fakes real."""
    if not isinstance(fake_scores, Tensor):
        return torch.stack([generator_gan_loss(kind, s) for s in fake_scores]).mean()
    if kind == "lsgan":
        return F.mse_loss(fake_scores, torch.ones_like(fake_scores))
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    if kind == "hinge":
        return -fake_scores.mean()
    raise ValueError(f"unknown gan loss {kind!r}")


def discriminator_loss(kind: GanLoss, real_scores: Scores, fake_scores: Scores) -> Tensor:
    """(real term + fake term) * 0.5, as the reference halves D's objective."""
    if not isinstance(real_scores, Tensor):
        assert not isinstance(fake_scores, Tensor)
        pairs = zip(real_scores, fake_scores, strict=True)
        return torch.stack([discriminator_loss(kind, r, f) for r, f in pairs]).mean()
    assert isinstance(fake_scores, Tensor)
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


CONTENT_SCALES = (1, 2)  # the feature network's strides 8 and 16: parts, not pixels or classes


def content_loss(features_real: Sequence[Tensor], features_translated: Sequence[Tensor]) -> Tensor:
    """Mean L1 between an input's and its translation's mid-level pretrained features.

    It asks the translation to keep what is where (a horse's shape, the scene), not its
    pixels, so unlike identity it leaves colour and texture free to change."""
    return torch.stack(
        [F.l1_loss(features_translated[i], features_real[i]) for i in CONTENT_SCALES]
    ).mean()
