"""The CycleGAN ResNet generator (Johnson et al. 2016, as used by Zhu et al. 2017).

Input and output are (N, 3, H, W) in [-1, 1]; H and W must be multiples of 4 because the
network downsamples twice. The config is saved beside the weights, so any stage can rebuild
the network from a model package alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from cyclegan.generator_config import SIZE_MULTIPLE, GeneratorConfig

__all__ = [
    "SIZE_MULTIPLE",
    "GeneratorConfig",
    "ResnetGenerator",
    "build_generator",
    "count_macs",
    "init_weights",
]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=True),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=True),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class SeparableConv(nn.Sequential):
    """A 3x3 depthwise convolution, then a 1x1 pointwise one: ~9/C of a full 3x3's cost."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, groups=channels, bias=True),
            nn.InstanceNorm2d(channels),
            nn.Conv2d(channels, channels, 1, bias=True),
        )


class MobileResidualBlock(nn.Module):
    """The residual block of GAN Compression's mobile generator (depthwise-separable convs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            SeparableConv(channels),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            SeparableConv(channels),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def upsampling_layers(kind: str, channels_in: int, channels_out: int) -> list[nn.Module]:
    """(N, C_in, H, W) -> (N, C_out, 2H, 2W).

    A stride-2 transposed convolution overlaps its kernels unevenly, which leaves the
    checkerboard an under-trained generator shows; nearest upsampling then a convolution
    gives every output pixel the same number of taps (Odena et al. 2016).
    """
    if kind == "deconv":
        return [
            nn.ConvTranspose2d(
                channels_in, channels_out, 3, stride=2, padding=1, output_padding=1, bias=True
            )
        ]
    if kind == "resize":
        return [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels_in, channels_out, 3, bias=True),
        ]
    raise ValueError(f"unknown upsampling {kind!r}")


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-3, tanh.

    R is a full residual block, or a depthwise-separable one when `config.arch` is "mobile".
    The u layers are transposed convolutions or resize-convolutions (`config.upsample`).
    With `config.ends` "shuffle" the full-resolution ends change: unshuffle and c3s1-2ngf in,
    c3s1-12 and shuffle out, all at half resolution. The layers between the ends (`inner`,
    d4ngf through u2ngf) are the same for both, so one can start from the other's weights.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        ngf = config.ngf
        stem = shuffle_stem(config) if config.ends == "shuffle" else conv7_stem(config)
        # InstanceNorm without affine parameters follows the reference, so conv biases stay on.
        inner: list[nn.Module] = [  # (N, 2ngf, H/2, W/2) -> (N, 2ngf, H/2, W/2)
            nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1, bias=True),
            nn.InstanceNorm2d(ngf * 4),
            nn.ReLU(inplace=True),
        ]
        block = MobileResidualBlock if config.arch == "mobile" else ResidualBlock
        inner += [block(ngf * 4) for _ in range(config.n_blocks)]
        inner += [
            *upsampling_layers(config.upsample, ngf * 4, ngf * 2),
            nn.InstanceNorm2d(ngf * 2),
            nn.ReLU(inplace=True),
        ]
        head = shuffle_head(config) if config.ends == "shuffle" else conv7_head(config)
        self.inner = slice(len(stem), len(stem) + len(inner))
        self.model = nn.Sequential(*stem, *inner, *head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]
        return self.model(x)

    def inner_layers(self) -> nn.Sequential:
        """The layers between the full-resolution ends, alike whatever `config.ends` is.

        The same modules, renumbered from 0, so their state dicts load into each other."""
        return nn.Sequential(*list(self.model)[self.inner])


def conv7_stem(config: GeneratorConfig) -> list[nn.Module]:
    """(N, in, H, W) -> (N, 2ngf, H/2, W/2): c7s1-ngf, d2ngf."""
    ngf = config.ngf
    return [
        nn.ReflectionPad2d(3),
        nn.Conv2d(config.in_channels, ngf, 7, bias=True),
        nn.InstanceNorm2d(ngf),
        nn.ReLU(inplace=True),
        nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1, bias=True),
        nn.InstanceNorm2d(ngf * 2),
        nn.ReLU(inplace=True),
    ]


def conv7_head(config: GeneratorConfig) -> list[nn.Module]:
    """(N, 2ngf, H/2, W/2) -> (N, out, H, W): ungf, c7s1-out, tanh."""
    ngf = config.ngf
    return [
        *upsampling_layers(config.upsample, ngf * 2, ngf),
        nn.InstanceNorm2d(ngf),
        nn.ReLU(inplace=True),
        nn.ReflectionPad2d(3),
        nn.Conv2d(ngf, config.out_channels, 7),
        nn.Tanh(),
    ]


def shuffle_stem(config: GeneratorConfig) -> list[nn.Module]:
    """(N, in, H, W) -> (N, 2ngf, H/2, W/2): each 2x2 block of pixels becomes 4 channels."""
    return [
        nn.PixelUnshuffle(2),
        nn.ReflectionPad2d(1),
        nn.Conv2d(config.in_channels * 4, config.ngf * 2, 3, bias=True),
        nn.InstanceNorm2d(config.ngf * 2),
        nn.ReLU(inplace=True),
    ]


def shuffle_head(config: GeneratorConfig) -> list[nn.Module]:
    """(N, 2ngf, H/2, W/2) -> (N, out, H, W): 4 channels per pixel become its 2x2 block."""
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(config.ngf * 2, config.out_channels * 4, 3, bias=True),
        nn.PixelShuffle(2),
        nn.Tanh(),
    ]


def build_generator(config: GeneratorConfig) -> nn.Module:
    """One factory for every stage: the ResNet generator, with full or mobile blocks."""
    if config.arch in ("resnet", "mobile"):
        return ResnetGenerator(config)
    raise ValueError(f"unknown generator architecture {config.arch!r}")


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The reference's 'normal' init: conv weights ~ N(0, 0.02), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            # under spectral norm the stored parameter is the un-normalised original
            parametrized = parametrize.is_parametrized(layer, "weight")
            weight = layer.parametrizations.weight.original if parametrized else layer.weight
            nn.init.normal_(weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def count_macs(config: GeneratorConfig, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass at (height, width), counted from the layers."""
    net = build_generator(config)
    total = 0

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, nn.ConvTranspose2d):  # each input pixel scatters a full kernel
            pixels = inputs[0].shape[-2] * inputs[0].shape[-1]
        else:
            pixels = output.shape[-2] * output.shape[-1]
        total += pixels * kernel * layer.in_channels * layer.out_channels // layer.groups

    handles = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        net(torch.zeros(1, config.in_channels, height, width))
    for h in handles:
        h.remove()
    return total
