"""One CycleGAN training step, as the paper writes it: the generators, then the discriminators.

`train_step(batch, state, config, placement)` changes `state` and returns the step's losses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.config import TrainConfig
from training.losses import (
    GanLoss,
    content_loss,
    cycle_loss,
    discriminator_loss,
    generator_gan_loss,
    identity_loss,
)
from training.networks import TrainState
from training.placement import Placement

LOSS_NAMES = (
    "loss_G", "loss_G_GAN", "loss_G_cycle", "loss_G_identity", "loss_G_content", "loss_D"
)  # fmt: skip


def gan_loss_of(kind: str, config: TrainConfig) -> GanLoss:
    """The PatchGAN plays `--gan-loss`; the projected discriminator plays hinge, as its paper."""
    return "hinge" if kind.startswith("projected") else config.gan_loss


def set_requires_grad(parameters: list[nn.Parameter], flag: bool) -> None:
    for parameter in parameters:
        parameter.requires_grad_(flag)


def train_step(
    batch: dict[str, Tensor], state: TrainState, config: TrainConfig, placement: Placement
) -> dict[str, float]:
    """One generator update then one discriminator update; returns the losses.

    For the first `config.d_warmup_steps` steps only the discriminators learn (see the flag)."""
    real_a = batch["a"].to(placement.device, non_blocking=True)
    real_b = batch["b"].to(placement.device, non_blocking=True)
    discriminators = state.discriminators

    if state.step < config.d_warmup_steps:
        # Warm-up: the generators hold still while fresh discriminators learn their fakes.
        with torch.no_grad(), placement.autocast():
            out = state.generators_train(real_a, real_b, False)
        nan = float("nan")  # logged as "not trained"
        g_losses = {name: nan for name in LOSS_NAMES if name.startswith("loss_G")}
    else:
        out, g_losses = generator_update(real_a, real_b, state, config, placement)
        if state.average is not None:
            state.average.update(state.generators)

    # Discriminators: real vs fakes drawn from the history pools.
    set_requires_grad(discriminators.trainable_parameters(), True)
    state.optimizer_d.zero_grad(set_to_none=True)
    fake_a = state.pool_a.query(out["fake_a"].float())
    fake_b = state.pool_b.query(out["fake_b"].float())
    with placement.autocast():
        scores = state.discriminators_train(real_a, fake_a, real_b, fake_b)
        loss_d = sum(
            discriminator_loss(gan_loss_of(key, config), real, fake)
            for key, (real, fake) in scores.items()
        )
        assert isinstance(loss_d, Tensor)
    state.scaler_d.scale(loss_d).backward()
    state.scaler_d.step(state.optimizer_d)
    state.scaler_d.update()
    state.step += 1

    return {**g_losses, "loss_D": float(loss_d.detach())}


def generator_update(
    real_a: Tensor, real_b: Tensor, state: TrainState, config: TrainConfig, placement: Placement
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The generators' step: fool the discriminators, reconstruct the cycle, keep identity
    (pixels) and content (pretrained features)."""
    use_identity = config.lambda_identity > 0
    discriminators = state.discriminators
    lambda_cycle_b = config.lambda_cycle if config.lambda_cycle_b is None else config.lambda_cycle_b
    weight = {"patch": 1.0, "projected": config.lambda_gan}
    set_requires_grad(discriminators.trainable_parameters(), False)
    state.optimizer_g.zero_grad(set_to_none=True)
    zero = torch.zeros((), device=placement.device)
    with placement.autocast():
        out = state.generators_train(real_a, real_b, use_identity)
        loss_gan = zero
        for domain, fake in (("b", out["fake_b"]), ("a", out["fake_a"])):
            for kind, scores in discriminators.judge(domain, fake).items():
                loss_gan = loss_gan + weight[kind] * generator_gan_loss(
                    gan_loss_of(kind, config), scores
                )
        loss_cycle = (
            cycle_loss(real_a, out["rec_a"]) * config.lambda_cycle
            + cycle_loss(real_b, out["rec_b"]) * lambda_cycle_b
        )
        loss_identity = zero
        if use_identity:
            loss_identity = (
                identity_loss(real_b, out["same_b"]) + identity_loss(real_a, out["same_a"])
            ) * (config.lambda_cycle * config.lambda_identity)
        loss_content = zero
        if config.lambda_content > 0:
            features = state.feature_network
            assert features is not None
            with torch.no_grad():
                of_real_a, of_real_b = features(real_a), features(real_b)
            loss_content = (
                content_loss(of_real_a, features(out["fake_b"]))
                + content_loss(of_real_b, features(out["fake_a"]))
            ) * config.lambda_content
        loss_g = loss_gan + loss_cycle + loss_identity + loss_content
    state.scaler_g.scale(loss_g).backward()
    state.scaler_g.step(state.optimizer_g)
    state.scaler_g.update()

    losses = {
        "loss_G": loss_g, "loss_G_GAN": loss_gan, "loss_G_cycle": loss_cycle,
        "loss_G_identity": loss_identity, "loss_G_content": loss_content,
    }  # fmt: skip
    return out, {name: float(value.detach()) for name, value in losses.items()}
