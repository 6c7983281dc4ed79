"""The four networks of a CycleGAN, their optimizers, and `TrainState`, what a step changes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cyclegan.generator import build_generator, init_weights
from training.config import TrainConfig
from training.discriminator import PatchDiscriminator
from training.image_pool import ImagePool


class CycleGenerators(nn.Module):
    """Both generators, so that one forward (and one DDP all-reduce) covers a whole G step."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.generator_ab = build_generator(config.generator_config())
        self.generator_ba = build_generator(config.generator_config())

    def forward(self, real_a: Tensor, real_b: Tensor, identity: bool) -> dict[str, Tensor]:
        fake_b = self.generator_ab(real_a)
        fake_a = self.generator_ba(real_b)
        out = {
            "fake_b": fake_b,
            "rec_a": self.generator_ba(fake_b),
            "fake_a": fake_a,
            "rec_b": self.generator_ab(fake_a),
        }
        if identity:  # a generator fed its own target domain should change nothing
            out["same_b"] = self.generator_ab(real_b)
            out["same_a"] = self.generator_ba(real_a)
        return out


class Discriminators(nn.Module):
    """Both discriminators; real and fake go through in one batch (InstanceNorm is per-sample)."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.discriminator_a = PatchDiscriminator(config.ndf, config.n_layers, norm=config.d_norm)
        self.discriminator_b = PatchDiscriminator(config.ndf, config.n_layers, norm=config.d_norm)

    def forward(
        self, real_a: Tensor, fake_a: Tensor, real_b: Tensor, fake_b: Tensor
    ) -> dict[str, Tensor]:
        scores_a = self.discriminator_a(torch.cat([real_a, fake_a]))
        scores_b = self.discriminator_b(torch.cat([real_b, fake_b]))
        n_a, n_b = real_a.shape[0], real_b.shape[0]
        return {
            "real_a": scores_a[:n_a],
            "fake_a": scores_a[n_a:],
            "real_b": scores_b[:n_b],
            "fake_b": scores_b[n_b:],
        }


@dataclass
class TrainState:
    """Everything a step reads and changes; `step` counts finished steps."""

    generators: CycleGenerators
    discriminators: Discriminators
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    pool_a: ImagePool
    pool_b: ImagePool
    step: int = 0
    # DDP wrappers when distributed, else the modules themselves
    generators_train: nn.Module = field(init=False)
    discriminators_train: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self.generators_train = self.generators
        self.discriminators_train = self.discriminators


def build_state(config: TrainConfig, device: torch.device, fp16: bool, rank: int) -> TrainState:
    torch.manual_seed(config.seed)
    generators = CycleGenerators(config)
    discriminators = Discriminators(config)
    init_weights(generators)
    init_weights(discriminators)
    generators.to(device)
    discriminators.to(device)
    betas = (config.beta1, config.beta2)
    return TrainState(
        generators=generators,
        discriminators=discriminators,
        optimizer_g=torch.optim.Adam(generators.parameters(), lr=config.lr, betas=betas),
        optimizer_d=torch.optim.Adam(discriminators.parameters(), lr=config.lr, betas=betas),
        # fp16 needs loss scaling against underflow; bf16 and fp32 do not (disabled = no-op).
        scaler_g=torch.amp.GradScaler(device.type, enabled=fp16),
        scaler_d=torch.amp.GradScaler(device.type, enabled=fp16),
        pool_a=ImagePool(config.pool_size, seed=config.seed * 100 + rank * 2),
        pool_b=ImagePool(config.pool_size, seed=config.seed * 100 + rank * 2 + 1),
    )
