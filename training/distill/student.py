"""`python -m training distill`: a small, fast student that reproduces a teacher package.

For each direction a student generator (fewer filters, fewer or mobile blocks) learns the
teacher's translation of the training images of that direction's source domain. The loss is
GAN Compression's (Li et al. 2020): an L1 between the outputs, plus feature matching, where a
learned 1x1 convolution maps the student's residual trunk (middle and end) onto the teacher's
and the distance between them is penalised, plus, with `--lambda-gan`, an adversarial term
from a fresh critic (`training/distill/critic.py`). The student is written as an ordinary
package under its own name, serving its own direction names (`horse2zebra-fast`), so it runs
beside its teacher.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Literal

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
    """The settings of `python -m training distill`: each field is a flag (`training/flags.py`)."""

    model_config = ConfigDict(extra="forbid")

    teacher: Path = Field(description="the teacher model package")
    data: Path = Field(description="folder with trainA/ and trainB/")
    arch: Literal["resnet", "mobile"] = Field("mobile", description="student blocks")
    ngf: int = Field(16, ge=1, description="student filters in the first layer")
    n_blocks: int = Field(6, ge=1, description="student residual blocks")
    ends: Literal["conv7", "shuffle"] = Field(
        "shuffle", description="the student's full-resolution layers: shuffle (none: pixel "
        "unshuffle in, pixel shuffle out; about half the time on a CPU) or conv7 (the reference's)",
    )  # fmt: skip
    suffix: str = Field(
        "-fast", pattern=r"^(-[a-z0-9]+)+$", description="appended to its direction names"
    )
    load_size: int = Field(256, ge=4, description="shorter side before cropping")
    image_size: int = Field(128, ge=4, description="training crop")
    steps: int = Field(6000, ge=1, description="training steps")
    lr: float = Field(2e-4, gt=0, description="Adam's learning rate")
    lambda_l1: float = Field(10.0, ge=0, description="weight of the L1 to the teacher's output")
    lambda_features: float = Field(
        1.0, ge=0, description="weight of the feature matching on the residual trunks"
    )
    lambda_gan: float = Field(
        0.0, ge=0, description="weight of a fresh critic telling the teacher's output from the "
        "student's (0: none)",
    )  # fmt: skip
    critic_ndf: int = Field(32, ge=1, description="the critics' first-layer filters")
    max_minutes: float | None = Field(None, gt=0, description="stop and package after this long")
    init_from: Path | None = Field(
        None,
        description="an earlier student package to continue from (same size; with other "
        "--ends, its layers between the ends carry over and the ends start fresh)",
    )
    only: str | None = Field(
        None, json_schema_extra={"metavar": "DIRECTION"},
        description="train this teacher direction's student alone (e.g. horse2zebra); the other "
        "is copied from --init-from unchanged",
    )  # fmt: skip
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32", description="auto: mixed precision on a GPU, bf16 on a CPU with native bf16"
    )
    log_every: int = Field(50, ge=1, description="steps between loss log lines")
    seed: int = Field(0, description="the run's random seed")


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
    """Train the students and write RUN/package; return it."""
    torch.manual_seed(config.seed)
    device = pick_device("auto", 0)
    placement = Placement(device, pick_autocast(config.precision, device), 0, 1)
    teacher = load_package(config.teacher)
    domains, between = teacher.manifest.domains, teacher.manifest.direction_between
    names = {"ab": between(domains[0], domains[1]), "ba": between(domains[1], domains[0])}
    trained = directions_to_train(config, names)
    student_config = GeneratorConfig(
        arch=config.arch, ngf=config.ngf, n_blocks=config.n_blocks, ends=config.ends,
        upsample=teacher.direction(names["ab"]).generator.upsample,
    )  # fmt: skip
    teachers, students = build_networks(teacher, names, trained, student_config, device)
    started_from = None
    if config.init_from is not None:
        started_from = load_students(
            config.init_from, students, names, student_config, config.suffix
        )
        if config.only is not None and started_from["inner_layers_only"]:
            raise ValueError(
                f"--only {config.only} keeps the other student of --init-from as it is, so "
                f"--ends must be that student's"
            )
    steps = train_students(config, run, teachers, students, placement)
    return write_student(
        config, teacher, student_config, students, run, steps, command, started_from
    )


def build_networks(
    teacher: ModelPackage, names: dict[str, str], trained: list[str],
    student_config: GeneratorConfig, device: torch.device,
) -> tuple[dict[str, nn.Module], dict[str, Student]]:  # fmt: skip
    """The frozen teachers of the directions that train, and a fresh student per direction."""
    teachers: dict[str, nn.Module] = {}
    students: dict[str, Student] = {}
    for key, name in names.items():
        if key in trained:  # an untrained student's teacher is never run
            teachers[key] = teacher.load_generator(name).to(device).eval().requires_grad_(False)
        channels = teacher.direction(name).generator.ngf * 4
        students[key] = Student(student_config, channels).to(device)
    return teachers, students


def lr_factor(step: int, steps: int) -> float:
    """Constant for the first half of the steps, then linear to 0."""
    return min(1.0, 2.0 * (1.0 - step / steps))


def train_students(
    config: DistillConfig, run: Path, teachers: dict[str, nn.Module],
    students: dict[str, Student], placement: Placement,
) -> int:  # fmt: skip
    """Train the students that have a teacher, logging to RUN; the number of steps taken."""
    trained = list(teachers)
    parameters = [p for key in trained for p in students[key].parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.lr, betas=(0.5, 0.999))
    decay = functools.partial(lr_factor, steps=config.steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
    critics = {
        key: OutputCritic(config.critic_ndf, config.lr, decay, placement.device)
        for key in trained
        if config.lambda_gan > 0
    }
    dataset = UnpairedDataset.from_data(
        config.data, config.load_size, config.image_size, True, config.seed
    )
    batches = iter(unpaired_loader(dataset))
    run.mkdir(parents=True, exist_ok=True)
    (run / run_folder.CONFIG).write_text(config.model_dump_json(indent=2))
    losses_log = LossLog(run / run_folder.LOSS_LOG, images_per_step=len(trained))
    budget = TimeBudget(config.max_minutes)
    step = 0
    with tqdm(total=config.steps, desc="distilling", unit="step") as bar, logging_redirect_tqdm():
        while step < config.steps:
            optimizer.zero_grad(set_to_none=True)
            losses = student_step(next(batches), config, teachers, students, critics, placement)
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
    return step


def student_step(
    batch: dict[str, Tensor], config: DistillConfig, teachers: dict[str, nn.Module],
    students: dict[str, Student], critics: dict[str, OutputCritic], placement: Placement,
) -> dict[str, float]:  # fmt: skip
    """The gradients of each trained student on its source domain's images, and one step of
    its critic; the losses by name (`l1_ab`, ...)."""
    losses: dict[str, float] = {}
    for key, teacher in teachers.items():
        x, critic = batch[key[0]].to(placement.device), critics.get(key)
        with placement.autocast():
            loss, parts, target, out = distill_loss(students[key], teacher, x, config, critic)
        loss.backward()
        if critic is not None:
            with placement.autocast():
                parts["critic"] = critic.step(x, target, out)
        losses.update({f"{name}_{key}": value for name, value in parts.items()})
    return losses


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

    The package must hold the same directions (with `suffix`) and the same generator, but for
    its `ends`: from a student with other ends only the layers between them carry over (the
    ends start fresh), so a new student keeps most of what the earlier one learnt. The
    adapters onto the teacher start fresh, as the teacher may be a newer one."""
    package = load_package(path)
    other_ends = False
    for key, name in names.items():
        spec = package.direction(name + suffix)  # a clear error for another pair or suffix
        if spec.generator.model_copy(update={"ends": student_config.ends}) != student_config:
            raise ValueError(
                f"{path}: {name + suffix} is {spec.generator}, but this student is "
                f"{student_config}; pass the same --arch, --ngf and --n-blocks"
            )
        earlier = package.load_generator(name + suffix)
        student = students[key].generator
        if spec.generator.ends != student_config.ends:
            other_ends = True
            student.inner_layers().load_state_dict(earlier.inner_layers().state_dict())
        else:
            student.load_state_dict(earlier.state_dict())
    log.info(
        "students start from %s %s%s", package.name, package.manifest.version,
        " (the layers between the ends; the ends start fresh)" if other_ends else "",
    )  # fmt: skip
    return {**init_from_record(package), "inner_layers_only": other_ends}


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
