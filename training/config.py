"""The one flat training config: defaults, then a YAML/JSON file, then command-line flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cyclegan.generator import SIZE_MULTIPLE, GeneratorConfig
from cyclegan.package import direction_name


class TrainConfig(BaseModel):
    """The settings of `python -m training train`: each field is a flag (`training/flags.py`)
    and a key of a --config file. Defaults are the reference CycleGAN's
    (junyanz/pytorch-CycleGAN-and-pix2pix)."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="folder with trainA/ and trainB/")
    domains: tuple[str, str] = Field(
        ("a", "b"),
        description="domain names, e.g. horse zebra",
        json_schema_extra={"metavar": ["A", "B"]},
    )
    name: str | None = Field(None, description="package name; default '<a>2<b>'")
    # images
    load_size: int = Field(286, ge=4, description="shorter side is resized to this")
    image_size: int = Field(256, ge=4, description="random square crop fed to the networks")
    flip: bool = Field(True, description="random horizontal flips of the training images")
    # networks
    ngf: int = Field(64, ge=1, description="generator filters in the first layer")
    n_blocks: int = Field(9, ge=1, description="generator residual blocks")
    upsample: Literal["deconv", "resize"] = Field(
        "deconv", description="generator upsampling: transposed convolution (reference) or "
        "resize-convolution (no checkerboard)",
    )  # fmt: skip
    ndf: int = Field(64, ge=1, description="discriminator filters in the first layer")
    n_layers: int = Field(3, ge=1, description="discriminator depth; 3 gives 70x70 patches")
    d_norm: Literal["instance", "spectral"] = Field(
        "instance", description="discriminator normalisation: instance (reference) or spectral "
        "(Miyato et al. 2018)",
    )  # fmt: skip
    d_arch: Literal["patch", "projected", "both"] = Field(
        "patch", description="discriminator: PatchGAN (reference), projected (heads on frozen "
        "ImageNet features, Projected GAN), or both",
    )  # fmt: skip
    feature_network: Literal["lite0", "lite1"] = Field(
        "lite0", description="the frozen EfficientNet-Lite of --d-arch projected and "
        "--lambda-content",
    )  # fmt: skip
    # objective
    gan_loss: Literal["lsgan", "vanilla", "hinge"] = Field(
        "lsgan", description="the adversarial loss"
    )
    lambda_cycle: float = Field(10.0, ge=0, description="weight of the cycle losses")
    lambda_cycle_b: float | None = Field(
        None, ge=0, json_schema_extra={"metavar": "W"},
        description="weight of the B->A->B cycle (default: --lambda-cycle). To rebuild a zebra "
        "from its horse, the horse must keep traces of the stripes: the reason zebra2horse keeps "
        "them. A lower weight (e.g. 5) lets it remove them, at some cost to that cycle's fidelity",
    )  # fmt: skip
    lambda_identity: float = Field(0.5, ge=0, description="times lambda_cycle; 0 turns it off")
    lambda_gan: float = Field(
        1.0, ge=0, description="weight of the projected discriminator's adversarial term"
    )
    lambda_content: float = Field(
        0.0, ge=0, description="L1 between input and translation in the feature network's "
        "mid-level features (a semantic alternative to identity); 0 turns it off",
    )  # fmt: skip
    diffaugment: tuple[Literal["color", "translation", "cutout"], ...] = Field(
        (), description="DiffAugment (Zhao et al. 2020) for the discriminators' real and fake "
        "inputs: a comma list of color, translation, cutout",
    )  # fmt: skip
    pool_size: int = Field(50, ge=0, description="past fakes kept for the discriminators (0: none)")
    d_warmup_steps: int = Field(
        0, ge=0, json_schema_extra={"metavar": "N"},
        description="train only the discriminators for the first N steps. A package carries no "
        "discriminators, so --init-from starts fresh ones; until they learn, the cycle and "
        "identity losses alone pull the generators back toward copying their input",
    )  # fmt: skip
    ema: float = Field(
        0.0, ge=0, lt=1, description="decay of an average of the generators' weights that the "
        "package holds (e.g. 0.999); 0: the package holds the last weights",
    )  # fmt: skip
    # model selection
    val_fraction: float = Field(
        0.0, ge=0, le=0.5, description="share of each train folder held out for validation"
    )
    val_every: int = Field(
        0, ge=0, description="score the generators on the validation split every N steps; "
        "the package holds the best-scoring ones (0: never, the package holds the last)",
    )  # fmt: skip
    # optimisation
    batch_size: int = Field(1, ge=1, description="images per step, per process")
    lr: float = Field(2e-4, gt=0, description="Adam's learning rate")
    beta1: float = Field(0.5, description="Adam's beta1")
    beta2: float = Field(0.999, description="Adam's beta2")
    epochs: int = Field(100, ge=0, description="epochs at constant lr")
    epochs_decay: int = Field(100, ge=0, description="epochs of linear decay to 0")
    max_steps: int | None = Field(None, ge=1, description="stop at this global step")
    max_minutes: float | None = Field(
        None, gt=0, description="stop, checkpoint and package after this many minutes"
    )
    init_from: Path | None = Field(
        None, description="model package whose generators this run starts from"
    )
    # bookkeeping
    log_every: int = Field(50, ge=1, description="steps between loss log lines")
    checkpoint_every: int = Field(1000, ge=1, description="steps between checkpoints")
    sample_every: int = Field(500, ge=1, description="steps between sample grids")
    device: str = Field("auto", description="auto, cpu or cuda")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto: mixed precision on a GPU, bf16 on a CPU with native bf16, else fp32",
    )
    seed: int = Field(0, description="the run's random seed")
    workers: int = Field(2, ge=0, description="data-loading processes")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.image_size % SIZE_MULTIPLE:
            raise ValueError(f"image_size must be a multiple of {SIZE_MULTIPLE}")
        if self.image_size > self.load_size:
            raise ValueError("image_size (the crop) cannot exceed load_size")
        if self.domains[0] == self.domains[1]:
            raise ValueError("the two domains need different names")
        if self.val_every and not self.val_fraction:
            raise ValueError("val_every needs a validation split: set val_fraction (e.g. 0.1)")
        if self.epochs + self.epochs_decay == 0 and self.max_steps is None:
            raise ValueError("nothing to train: epochs + epochs_decay is 0 and no max_steps")
        return self

    @property
    def package_name(self) -> str:
        return self.name or direction_name(*self.domains)

    @property
    def uses_feature_network(self) -> bool:
        return self.d_arch != "patch" or self.lambda_content > 0

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(ngf=self.ngf, n_blocks=self.n_blocks, upsample=self.upsample)


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping of TrainConfig keys (dashes or underscores)."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def resolve_config(
    file_values: dict[str, Any], flag_values: dict[str, Any], base: dict[str, Any] | None = None
) -> TrainConfig:
    """base (a resumed run's saved config) < file < flags; flags left unset are None."""
    merged: dict[str, Any] = dict(base or {})
    merged.update(file_values)
    merged.update({key: value for key, value in flag_values.items() if value is not None})
    return TrainConfig.model_validate(merged)
