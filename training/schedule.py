"""The learning-rate schedule: a pure function of the global step, so resume is exact."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from training.config import TrainConfig


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """1 for `epochs`, then a linear decay to 0 over `epochs_decay` (fractional epochs)."""
    if config.epochs_decay == 0:
        return 1.0
    progress = step / steps_per_epoch
    return max(0.0, 1.0 - max(0.0, progress - config.epochs) / config.epochs_decay)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    return config.lr * lr_factor(config, step, steps_per_epoch)


def lr_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, step: int
) -> LambdaLR:
    """A scheduler whose counter is the global step, starting (or resuming) at `step`."""
    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
    return LambdaLR(
        optimizer,
        lambda s: lr_factor(config, s, steps_per_epoch),
        last_epoch=step - 1,  # the scheduler's own first step() brings it to `step`
    )
