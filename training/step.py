"""One CycleGAN training step, as the paper writes it: the generators, then the discriminators.

`train_step(batch, state, config, runtime)` changes `state` and returns the step's losses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from training.config import TrainConfig
from training.diffaugment import diff_augment
from training.losses import cycle_loss, discriminator_loss, generator_gan_loss, identity_loss
from training.networks import TrainState
from training.runtime import Runtime

LOSS_NAMES = ("loss_G", "loss_G_GAN", "loss_G_cycle", "loss_G_identity", "loss_D")


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def train_step(
    batch: dict[str, Tensor], state: TrainState, config: TrainConfig, runtime: Runtime
) -> dict[str, float]:
    """One generator update then one discriminator update; returns the losses.

    For the first `config.d_warmup_steps` steps only the discriminators learn (see the flag)."""
    real_a = batch["a"].to(runtime.device, non_blocking=True)
    real_b = batch["b"].to(runtime.device, non_blocking=True)
    discriminators = state.discriminators

    def augment(x: Tensor) -> Tensor:  # what every discriminator input goes through
        return diff_augment(x, config.diffaugment)

    if state.step < config.d_warmup_steps:
        # Warm-up: the generators hold still while fresh discriminators learn their fakes.
        with torch.no_grad(), runtime.autocast():
            out = state.generators_train(real_a, real_b, False)
        nan = torch.tensor(float("nan"))
        loss_g = loss_gan = loss_cycle = loss_identity = nan  # logged as "not trained"
    else:
        out, loss_g, loss_gan, loss_cycle, loss_identity = generator_update(
            real_a, real_b, state, config, runtime, augment
        )

    # Discriminators: real vs fakes drawn from the history pools.
    set_requires_grad(discriminators, True)
    state.optimizer_d.zero_grad(set_to_none=True)
    fake_a = state.pool_a.query(out["fake_a"].float())
    fake_b = state.pool_b.query(out["fake_b"].float())
    with runtime.autocast():
        scores = state.discriminators_train(
            augment(real_a), augment(fake_a), augment(real_b), augment(fake_b)
        )
        loss_d = discriminator_loss(
            config.gan_loss, scores["real_a"], scores["fake_a"]
        ) + discriminator_loss(config.gan_loss, scores["real_b"], scores["fake_b"])
    state.scaler_d.scale(loss_d).backward()
    state.scaler_d.step(state.optimizer_d)
    state.scaler_d.update()
    state.step += 1

    return {
        "loss_G": float(loss_g.detach()),
        "loss_G_GAN": float(loss_gan.detach()),
        "loss_G_cycle": float(loss_cycle.detach()),
        "loss_G_identity": float(loss_identity.detach()),
        "loss_D": float(loss_d.detach()),
    }


def generator_update(
    real_a: Tensor, real_b: Tensor, state: TrainState, config: TrainConfig, runtime: Runtime,
    augment: Callable[[Tensor], Tensor],
) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """The generators' step: fool both discriminators, reconstruct the cycle, keep identity."""
    use_identity = config.lambda_identity > 0
    discriminators = state.discriminators
    lambda_cycle_b = config.lambda_cycle if config.lambda_cycle_b is None else config.lambda_cycle_b
    set_requires_grad(discriminators, False)
    state.optimizer_g.zero_grad(set_to_none=True)
    with runtime.autocast():
        out = state.generators_train(real_a, real_b, use_identity)
        loss_gan = generator_gan_loss(
            config.gan_loss, discriminators.discriminator_b(augment(out["fake_b"]))
        ) + generator_gan_loss(
            config.gan_loss, discriminators.discriminator_a(augment(out["fake_a"]))
        )
        loss_cycle = (
            cycle_loss(real_a, out["rec_a"]) * config.lambda_cycle
            + cycle_loss(real_b, out["rec_b"]) * lambda_cycle_b
        )
        if use_identity:
            loss_identity = (
                identity_loss(real_b, out["same_b"]) + identity_loss(real_a, out["same_a"])
            ) * (config.lambda_cycle * config.lambda_identity)
        else:
            loss_identity = torch.zeros((), device=runtime.device)
        loss_g = loss_gan + loss_cycle + loss_identity
    state.scaler_g.scale(loss_g).backward()
    state.scaler_g.step(state.optimizer_g)
    state.scaler_g.update()

    return out, loss_g, loss_gan, loss_cycle, loss_identity
