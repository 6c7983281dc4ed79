"""A discriminator on frozen pretrained features (Projected GAN, Sauer et al. 2021).

The image goes through the frozen EfficientNet-Lite (`feature_network.py`), which gives four
scales (strides 4, 8, 16, 32). Before the trainable heads see them, the features are mixed by
frozen *random* layers, as the paper does, so that a head cannot lean on a few strong ImageNet
features and must use all of them:
- cross-channel mixing (CCM): a random 1x1 convolution per scale;
- cross-scale mixing (CSM): from the deepest scale up, each scale adds a random 1x1 projection of
  the (2x upsampled) scale below it, as in a feature pyramid.
Each scale then has a small spectral-norm head that scores patches. Training uses hinge loss
(the paper's) and DiffAugment translation and cutout on every image it judges; colour
augmentation is left out on purpose: it erased the brown-against-black-and-white cue.

Input (N, 3, H, W) in [-1, 1]; output a list of four score maps, one per scale.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from training.feature_network import FEATURE_CHANNELS

PROJECTED_AUGMENT = ("translation", "cutout")
MIXED_CHANNELS = (32, 64, 128, 256)  # per scale after cross-channel mixing (the paper's x2 rule)
HEAD_WIDTH = 64


class RandomMixing(nn.Module):
    """CCM + CSM: frozen random 1x1 convolutions within and across scales."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)

        def frozen(cin: int, cout: int) -> nn.Conv2d:
            conv = nn.Conv2d(cin, cout, 1)
            bound = (3 / cin) ** 0.5  # Kaiming-uniform for a linear layer: keeps the scale
            with torch.no_grad():
                conv.weight.uniform_(-bound, bound, generator=generator)
                conv.bias.zero_()
            conv.requires_grad_(False)
            return conv

        self.channel_mix = nn.ModuleList(
            frozen(cin, cout) for cin, cout in zip(FEATURE_CHANNELS, MIXED_CHANNELS, strict=True)
        )
        # scale_mix[i] carries scale i + 1 (deeper, half the size) up into scale i
        self.scale_mix = nn.ModuleList(
            frozen(MIXED_CHANNELS[i + 1], MIXED_CHANNELS[i]) for i in range(3)
        )

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        mixed = [mix(f) for mix, f in zip(self.channel_mix, features, strict=True)]
        out = [mixed[-1]]
        for i in (2, 1, 0):
            deeper = F.interpolate(out[0], size=mixed[i].shape[-2:], mode="bilinear")
            out.insert(0, mixed[i] + self.scale_mix[i](deeper))
        return out


def _head(channels: int) -> nn.Sequential:
    """A small spectral-norm patch critic for one scale: (N, C, h, w) -> (N, 1, h, w).

    No striding, so it takes any size down to 1x1 (the deepest scale of a 32-pixel crop)."""
    return nn.Sequential(
        spectral_norm(nn.Conv2d(channels, HEAD_WIDTH, 3, padding=1)),
        nn.LeakyReLU(0.2, inplace=True),
        spectral_norm(nn.Conv2d(HEAD_WIDTH, HEAD_WIDTH, 3, padding=1)),
        nn.LeakyReLU(0.2, inplace=True),
        spectral_norm(nn.Conv2d(HEAD_WIDTH, 1, 1)),
    )


class ProjectedDiscriminator(nn.Module):
    """Scores one domain's images from the frozen network's features (passed in, shared)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.mixing = RandomMixing(seed)
        self.heads = nn.ModuleList(_head(c) for c in MIXED_CHANNELS)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [head(f) for head, f in zip(self.heads, self.mixing(features), strict=True)]
