"""Sample grids during training: one fixed image per domain, translated and reconstructed."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from cyclegan.imaging import image_grid
from training.config import TrainConfig
from training.data import augment, load_image
from training.networks import CycleGenerators


def sample_images(
    config: TrainConfig, held_out: tuple[list[Path], list[Path]] = ([], [])
) -> tuple[Tensor, Tensor]:
    """One fixed image per domain, centre crop: the first held-out one when the run holds some
    out for validation (so the test folders stay unseen), else the first of testA/testB, else
    of trainA/trainB."""
    picks = []
    for side, held in zip(("A", "B"), held_out, strict=True):
        folder = config.data / f"test{side}"
        if not folder.is_dir():
            folder = config.data / f"train{side}"
        files = held or sorted(
            p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        for file in files:
            try:
                image = load_image(file)
            except OSError:
                continue
            crop = config.image_size
            picks.append(augment(image, crop, crop, False, torch.Generator().manual_seed(0)))
            break
    return picks[0][None], picks[1][None]


def save_samples(
    generators: CycleGenerators, samples: tuple[Tensor, Tensor], path: Path, device: torch.device
) -> None:
    """A grid: real | translated | reconstructed, one row per direction."""
    real_a, real_b = (s.to(device) for s in samples)
    with torch.no_grad():
        out = generators(real_a, real_b, identity=False)
    grid = image_grid(
        [
            [real_a[0], out["fake_b"][0], out["rec_a"][0]],
            [real_b[0], out["fake_a"][0], out["rec_b"][0]],
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
