"""`python -m training distill`: a small, fast student that reproduces a teacher package.

For each direction a student generator (fewer filters, fewer or mobile blocks) learns the
teacher's translation of the training images of that direction's source domain. The loss is
GAN Compression's (Li et al. 2020): an L1 between the outputs, plus feature matching, where a
learned 1x1 convolution maps the student's residual trunk (middle and end) onto the teacher's
and the distance between them is penalised, plus, with `--lambda-gan`, an adversarial term
from a fresh critic (`training/distill/critic.py`). The student is
written as an ordinary package under its own name, serving its own direction names
(`horse2zebra-fast`), so it runs beside its teacher.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cyclegan.generator import (
    GeneratorConfig,
    MobileResidualBlock,
    ResidualBlock,
    build_generator,
    count_macs,
    init_weights,
)
from cyclegan.package import ModelPackage, load_package
from training import run_folder
from training.data import UnpairedDataset, unpaired_loader
from training.distill.critic import OutputCritic
from training.init_from import init_from_record
from training.loss_log import LossLog
from training.packaging import write_made_package
from training.placement import Placement, pick_autocast, pick_device
from training.stopping import TimeBudget

log = logging.getLogger(__name__)

MAC_RESOLUTION = 256  # MACs are quoted per 256x256 image


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher: Path
    data: Path
    arch: str = Field("mobile", pattern="^(resnet|mobile)$")
    ngf: int = Field(16, ge=1)
    n_blocks: int = Field(6, ge=1)
    suffix: str = Field("-fast", pattern=r"^(-[a-z0-9]+)+$")
    load_size: int = Field(256, ge=4)
    image_size: int = Field(128, ge=4)
    steps: int = Field(6000, ge=1)
    lr: float = Field(2e-4, gt=0)
    lambda_l1: float = Field(10.0, ge=0)
    lambda_features: float = Field(1.0, ge=0)
    lambda_gan: float = Field(0.0, ge=0)  # 0: no critics
    critic_ndf: int = Field(32, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    init_from: Path | None = None  # a student package to continue from (same arch and size)
    only: str | None = None  # train this teacher direction alone; the other comes from init_from
    precision: str = Field("fp32", pattern="^(auto|fp32|bf16)$")
    log_every: int = Field(50, ge=1)
    seed: int = 0


def trunk_features(net: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The output and the activations after the middle and the last residual block."""
    layers = list(net.model)  # type: ignore[attr-defined]
    blocks = [i for i, m in enumerate(layers) if isinstance(m, ResidualBlock | MobileResidualBlock)]
    taps = [blocks[(len(blocks) - 1) // 2], blocks[-1]]  # the same block twice if only one
    features = []
    for index, layer in enumerate(layers):
        x = layer(x)
        features += [x] * taps.count(index)
    return x, features


class Student(nn.Module):
    """A student generator and the 1x1 convolutions that map its trunk onto the teacher's."""

    def __init__(self, config: GeneratorConfig, teacher_channels: int) -> None:
        super().__init__()
        self.generator = build_generator(config)
        init_weights(self.generator)
        student_channels = config.ngf * 4
        self.adapters = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, 1) for _ in range(2)
        )


def distill_loss(
    student: Student, teacher: nn.Module, x: Tensor, config: DistillConfig,
    critic: OutputCritic | None = None,
) -> tuple[Tensor, dict[str, float], Tensor, Tensor]:  # fmt: skip
    """The student's loss, its parts, and the teacher's and the student's outputs."""
    with torch.no_grad():
        target, teacher_features = trunk_features(teacher, x)
    out, features = trunk_features(student.generator, x)
    l1 = F.l1_loss(out, target)
    matching = sum(
        (F.mse_loss(adapter(f), t) for adapter, f, t in zip(
            student.adapters, features, teacher_features, strict=True
        )),
        torch.zeros((), device=x.device),
    )  # fmt: skip
    loss = config.lambda_l1 * l1 + config.lambda_features * matching
    parts = {"l1": float(l1.detach()), "features": float(matching.detach())}
    if critic is not None:
        adversarial = critic.student_loss(x, out)
        loss = loss + config.lambda_gan * adversarial
        parts["gan"] = float(adversarial.detach())
    return loss, parts, target, out


def distill(config: DistillConfig, run: Path, command: list[str]) -> ModelPackage:
    """Train both students and write RUN/package; return it."""
    torch.manual_seed(config.seed)
    device = pick_device("auto", 0)
    autocast = pick_autocast(config.precision, device)
    placement = Placement(device, autocast, 0, 1)
    teacher_package = load_package(config.teacher)
    domains = teacher_package.manifest.domains
    between = teacher_package.manifest.direction_between
    names = {"ab": between(domains[0], domains[1]), "ba": between(domains[1], domains[0])}
    trained = directions_to_train(config, names)
    student_config = GeneratorConfig(
        arch=config.arch,  # type: ignore[arg-type]
        ngf=config.ngf, n_blocks=config.n_blocks,
        upsample=teacher_package.direction(names["ab"]).generator.upsample,
    )  # fmt: skip
    teachers, students = {}, {}
    for key, name in names.items():
        if key in trained:  # an untrained student's teacher is never run
            teachers[key] = teacher_package.load_generator(name).to(device).eval()
            teachers[key].requires_grad_(False)
        channels = teacher_package.direction(name).generator.ngf * 4
        students[key] = Student(student_config, channels).to(device)
    started_from = None
    if config.init_from is not None:
        started_from = load_students(
            config.init_from, students, names, student_config, config.suffix
        )
    parameters = [p for key in trained for p in students[key].parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.lr, betas=(0.5, 0.999))

    def decay(step: int) -> float:  # constant for the first half, then linear to 0
        return min(1.0, 2.0 * (1.0 - step / config.steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
    critics = {
        key: OutputCritic(config.critic_ndf, config.lr, decay, device)
        for key in trained
        if config.lambda_gan > 0
    }
    dataset = UnpairedDataset.from_data(
        config.data, config.load_size, config.image_size, True, config.seed
    )
    loader = unpaired_loader(dataset)
    run.mkdir(parents=True, exist_ok=True)
    (run / run_folder.CONFIG).write_text(config.model_dump_json(indent=2))
    losses_log = LossLog(run / run_folder.LOSS_LOG, images_per_step=len(trained))
    budget = TimeBudget(config.max_minutes)
    batches = iter(loader)
    step = 0
    with tqdm(total=config.steps, desc="distilling", unit="step") as bar, logging_redirect_tqdm():
        while step < config.steps:
            batch = next(batches)
            optimizer.zero_grad(set_to_none=True)
            losses: dict[str, float] = {}
            for key in trained:  # each student sees its source domain
                side = key[0]
                x, critic = batch[side].to(device), critics.get(key)
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    loss, parts, target, out = distill_loss(
                        students[key], teachers[key], x, config, critic
                    )
                loss.backward()
                if critic is not None:
                    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                        parts["critic"] = critic.step(x, target, out)
                losses.update({f"{name}_{key}": value for name, value in parts.items()})
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            losses_log.add(losses)
            if step % config.log_every == 0 or step == config.steps:
                means = losses_log.flush(step, schedule.get_last_lr()[0])
                bar.set_postfix(l1="/".join(f"{means[f'l1_{key}']:.3f}" for key in trained))
            if budget.spent(placement):
                log.info("--max-minutes %s reached at step %d", config.max_minutes, step)
                break
    return write_student(
        config, teacher_package, student_config, students, run, step, command, started_from
    )


def directions_to_train(config: DistillConfig, names: dict[str, str]) -> list[str]:
    """The keys ("ab", "ba") of the students this run trains: both, or `--only`'s.

    Training one direction alone gives it every step; the untouched student is copied from
    `--init-from` as it is, so the package still serves both directions."""
    if config.only is None:
        return list(names)
    trained = [key for key, name in names.items() if name == config.only]
    if not trained:
        raise ValueError(
            f"--only {config.only}: the teacher translates {', '.join(names.values())}"
        )
    if config.init_from is None:
        raise ValueError(f"--only {config.only} needs --init-from: the other student comes from it")
    return trained


def load_students(
    path: Path, students: dict[str, Student], names: dict[str, str],
    student_config: GeneratorConfig, suffix: str,
) -> dict[str, Any]:  # fmt: skip
    """Start each student from an earlier student package; what it grew from, for model.json.

    The package must hold the same directions (with `suffix`) and the same generator; the
    adapters onto the teacher start fresh, as the teacher may be a newer one."""
    package = load_package(path)
    for key, name in names.items():
        spec = package.direction(name + suffix)  # a clear error for another pair or suffix
        if spec.generator != student_config:
            raise ValueError(
                f"{path}: {name + suffix} is {spec.generator}, but this student is "
                f"{student_config}; pass the same --arch, --ngf and --n-blocks"
            )
        students[key].generator.load_state_dict(package.load_generator(name + suffix).state_dict())
    log.info("students start from %s %s", package.name, package.manifest.version)
    return init_from_record(package)


def write_student(
    config: DistillConfig, teacher: ModelPackage, student_config: GeneratorConfig,
    students: dict[str, Student], run: Path, steps: int, command: list[str],
    started_from: dict[str, Any] | None = None,
) -> ModelPackage:  # fmt: skip
    teacher_config = next(iter(teacher.manifest.directions.values())).generator
    native = next(iter(teacher.manifest.directions.values())).native_resolution
    training: dict[str, Any] = {
        "trainer": "python -m training distill",
        "commands": [["python -m training", *command]],
        "config": {**config.model_dump(mode="json"), "teacher": config.teacher.name,
                   "data": config.data.name,
                   "init_from": config.init_from.name if config.init_from else None},
        "steps": steps,
        "init_from": started_from,
        "distilled_from": {
            "name": teacher.name,
            "version": teacher.manifest.version,
            "macs_per_256px_image": count_macs(teacher_config, MAC_RESOLUTION, MAC_RESOLUTION),
        },
        "macs_per_256px_image": count_macs(student_config, MAC_RESOLUTION, MAC_RESOLUTION),
    }  # fmt: skip
    generators = {
        key: (student.generator.float().cpu().eval(), student_config)
        for key, student in students.items()
    }
    package = write_made_package(
        run / run_folder.PACKAGE,
        name=f"{teacher.name}{config.suffix}",
        version_tag=f"step{steps}",
        training=training,
        run=run,
        domains=teacher.manifest.domains,
        generators=generators,
        native_resolution=native,
        direction_suffix=config.suffix,
    )
    log.info(
        "student package written: %s (%s)", package.path, ", ".join(package.manifest.directions)
    )
    return package
