"""Model selection on a validation split held out of the train folders (`--val-fraction`).

`split_validation` takes a share of each train folder by a hash of the file names, so the same
files are held out on every machine whatever the folder's listing order; training never sees
them. Every `--val-every` steps `Validator.score` translates them at the package's resolution
and judges the result with the ImageNet network training did not use (`imagenet_check.py`):
the Fréchet distance to the real held-out photos of the target domain (the selection score,
lower is better, mean of the two directions) and, where a domain has an ImageNet class, the
ImageNet check. The test folders are never read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from training.config import TrainConfig
from training.data import DataError
from training.feature_network import FeatureNetwork
from training.networks import CycleGenerators
from training.placement import Placement
from training.quality.evaluate import load_images
from training.quality.imagenet_check import judge_for, judge_outputs, pretrained_metrics

SELECTION = "selection_fd"  # the key of the score the package is chosen by


def is_held_out(path: Path, fraction: float) -> bool:
    digest = hashlib.sha256(path.name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


MIN_HELD_OUT = 2  # a Fréchet distance needs two images a side


def split_validation(files: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(train, held out): at least MIN_HELD_OUT held out (topped up from the end of the list)
    and at least one kept; a folder too small for that is refused before any training."""
    if fraction <= 0:
        return files, []
    if len(files) <= MIN_HELD_OUT:
        folder = files[0].parent if files else "a train folder"
        raise DataError(
            f"{folder}: {len(files)} images; --val-fraction needs at least {MIN_HELD_OUT + 1} "
            "(two to hold out, one to train on)"
        )
    held = [p for p in files if is_held_out(p, fraction)]
    held += [p for p in reversed(files) if p not in set(held)][: max(0, MIN_HELD_OUT - len(held))]
    if len(held) == len(files):
        held = held[1:]
    kept = [p for p in files if p not in set(held)]
    return kept, [p for p in files if p in set(held)]


class Validator:
    """Scores generators on the held-out images of both domains."""

    def __init__(
        self, config: TrainConfig, held_a: list[Path], held_b: list[Path], placement: Placement
    ) -> None:
        self.domains = config.domains
        self.placement = placement
        self.judge = FeatureNetwork(judge_for(config.feature_network)).to(placement.device)
        resolution = config.load_size
        self.real = {"a": load_images(held_a, resolution), "b": load_images(held_b, resolution)}
        self.judged_real = {side: self._judge(images) for side, images in self.real.items()}

    def _judge(self, images: Tensor) -> dict[str, Tensor]:
        with self.placement.autocast():
            return judge_outputs(self.judge, images.to(self.placement.device))

    @torch.no_grad()
    def score(self, generators: CycleGenerators) -> dict[str, float]:
        a, b = self.domains
        out: dict[str, float] = {}
        directions = (
            (a, b, "a", "b", generators.generator_ab),
            (b, a, "b", "a", generators.generator_ba),
        )
        for source, target, side_in, side_out, generator in directions:
            was_training = generator.training
            generator.eval()
            with self.placement.autocast():
                batches = self.real[side_in].to(self.placement.device).split(8)
                translated = torch.cat([generator(x).float() for x in batches])
            generator.train(was_training)
            metrics = pretrained_metrics(
                self.judge, self._judge(translated), self.judged_real[side_out], source, target,
                with_kid=False,
            )  # fmt: skip
            out |= {f"{source}2{target}_{key}": value for key, value in metrics.items()}
        fd_keys = [key for key in out if "_fd_" in key]
        out[SELECTION] = sum(out[key] for key in fd_keys) / len(fd_keys)
        return out
