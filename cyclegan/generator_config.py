"""The generator's config: what model.json stores to rebuild a generator (no torch import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The generator halves the resolution twice, so inputs must be multiples of this.
SIZE_MULTIPLE = 4


class GeneratorConfig(BaseModel):
    """Everything needed to rebuild a generator; saved in model.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["resnet", "mobile"] = Field(
        "resnet",
        description="resnet: the reference's residual blocks; mobile: depthwise-separable "
        "residual blocks (GAN Compression, Li et al. 2020), several times cheaper",
    )
    ngf: int = Field(64, ge=1, description="filters in the first layer")
    n_blocks: int = Field(9, ge=1, description="residual blocks at the bottleneck")
    upsample: Literal["deconv", "resize"] = Field(
        "deconv",
        description="deconv: transposed convolutions (the reference); resize: nearest-neighbour "
        "upsampling then a convolution, which cannot leave a checkerboard (Odena et al. 2016)",
    )
    ends: Literal["conv7", "shuffle"] = Field(
        "conv7",
        description="the layers at full resolution. conv7: the reference's 7x7 convolutions in "
        "and out; shuffle: the image is folded into 2x2 blocks on the way in (pixel unshuffle) "
        "and unfolded on the way out (pixel shuffle, Shi et al. 2016), so no layer runs at "
        "full resolution: about half a small student's time on a CPU",
    )
    in_channels: int = Field(3, ge=1)
    out_channels: int = Field(3, ge=1)
