"""Judging translations with a pretrained ImageNet network that training did not use.

The judge is EfficientNet-Lite1 when the discriminator used Lite0 (and the other way round): a
judge built on the discriminator's own network would flatter it (Kynkäänniemi et al. 2023).
- `FD-<net>`, `KD-<net>`: Fréchet and kernel distance between translations and real photos of
  the target domain in the judge's pooled features (named by the network, never "FID", which
  means Inception).
- The ImageNet check, where a domain has an ImageNet class (only "zebra": ImageNet has no
  general horse, and no season): the share of translations into it whose top-1 is that class,
  and the share of translations out of it whose top-1 still is.
"""

from __future__ import annotations

import torch
from torch import Tensor

from training.feature_network import ZEBRA_CLASS, FeatureNetwork
from training.quality.metrics import fid, kid

IMAGENET_CLASSES = {"zebra": ZEBRA_CLASS}


def judge_for(feature_network: str) -> str:
    """The judge: the Lite that the discriminator's network is not."""
    return "lite0" if feature_network == "lite1" else "lite1"


def fd_label(key: str) -> str:
    """A report key as people read it: "fd_lite1" -> "FD-Lite1"."""
    return "FD-" + key.removeprefix("fd_").replace("lite", "Lite")


@torch.no_grad()
def judge_outputs(judge: FeatureNetwork, images: Tensor, batch_size: int = 16) -> dict[str, Tensor]:
    """Pooled features (N, 1280) and top-1 ImageNet classes (N,) of images in [-1, 1]."""
    pooled, top1 = [], []
    for chunk in images.split(batch_size):
        features = judge.pooled(judge.at_input_size(chunk.float()))
        pooled.append(features)
        top1.append(judge.classify(features).argmax(1))
    return {"pooled": torch.cat(pooled), "top1": torch.cat(top1)}


def imagenet_check(top1: Tensor, source: str, target: str) -> dict[str, float]:
    """Shares of top-1 ImageNet classes for a direction source -> target (see module doc)."""
    out = {}
    if target in IMAGENET_CLASSES:
        out["imagenet_target_share"] = float((top1 == IMAGENET_CLASSES[target]).float().mean())
    if source in IMAGENET_CLASSES:
        out["imagenet_source_left"] = float((top1 == IMAGENET_CLASSES[source]).float().mean())
    return out


def pretrained_metrics(
    judge: FeatureNetwork, translated: dict[str, Tensor], real_target: dict[str, Tensor],
    source: str, target: str, with_kid: bool = True,
) -> dict[str, float]:  # fmt: skip
    """FD (and KD) to the real target photos, and the ImageNet check, from `judge_outputs`."""
    out = {f"fd_{judge.name}": fid(translated["pooled"], real_target["pooled"])}
    if with_kid:
        mean, std = kid(translated["pooled"], real_target["pooled"])
        out[f"kd_{judge.name}"], out[f"kd_{judge.name}_std"] = mean, std
    return out | imagenet_check(translated["top1"], source, target)
