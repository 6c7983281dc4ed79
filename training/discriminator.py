"""The PatchGAN discriminator: with n_layers=3 each output judges a 70x70 patch."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

DiscriminatorNorm = Literal["instance", "spectral"]


class PatchDiscriminator(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N, 1, H', W') of real/fake scores, one per patch.

    norm="instance" is the reference; "spectral" bounds every convolution's Lipschitz constant
    instead (Miyato et al. 2018), which keeps the discriminator's gradients to the generators
    smooth and steadies the game when it would otherwise win too easily.
    """

    def __init__(
        self, ndf: int = 64, n_layers: int = 3, in_channels: int = 3,
        norm: DiscriminatorNorm = "instance",
    ) -> None:  # fmt: skip
        super().__init__()

        def conv(channels_in: int, channels_out: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(channels_in, channels_out, 4, stride=stride, padding=1, bias=True)
            return spectral_norm(layer) if norm == "spectral" else layer

        layers: list[nn.Module] = [conv(in_channels, ndf, 2), nn.LeakyReLU(0.2, inplace=True)]
        channels = ndf
        for i in range(1, n_layers + 1):
            # n_layers strided layers widen the patch; the last one keeps the resolution.
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers.append(conv(channels, out, stride))
            if norm == "instance":
                layers.append(nn.InstanceNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels = out
        layers.append(conv(channels, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
