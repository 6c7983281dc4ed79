"""The CycleGAN training loop: plain functions over explicit state.

`train(config, run)` trains on `config.data`, writes RUN/metrics.jsonl, sample grids,
checkpoints and, at the end, a model package in RUN/package. Launched by `torchrun` it runs
data-parallel (DDP): each process takes its share of every batch and gradients are averaged.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from cyclegan.generator import build_generator, init_weights
from cyclegan.imaging import image_grid
from cyclegan.package import ModelPackage, write_json_atomic, write_package
from training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.data import ResumableSampler, UnpairedDataset, augment, load_image, scan_folder
from training.diffaugment import diff_augment
from training.discriminator import PatchDiscriminator
from training.image_pool import ImagePool
from training.losses import cycle_loss, discriminator_loss, generator_gan_loss, identity_loss
from training.plot import LOG_NAME
from training.warm_start import init_generators_from

log = logging.getLogger(__name__)

LOSS_NAMES = ("loss_G", "loss_G_GAN", "loss_G_cycle", "loss_G_identity", "loss_D")


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


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None
    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Constant for `epochs`, then linear decay to 0 over `epochs_decay` (fractional epochs)."""
    progress = step / steps_per_epoch
    if config.epochs_decay == 0:
        return config.lr
    factor = 1.0 - max(0.0, progress - config.epochs) / config.epochs_decay
    return config.lr * max(0.0, factor)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def train_step(
    batch: dict[str, Tensor], state: TrainState, config: TrainConfig, runtime: Runtime
) -> dict[str, float]:
    """One generator update then one discriminator update; returns the losses."""
    real_a = batch["a"].to(runtime.device, non_blocking=True)
    real_b = batch["b"].to(runtime.device, non_blocking=True)
    use_identity = config.lambda_identity > 0
    discriminators = state.discriminators
    lambda_cycle_b = config.lambda_cycle if config.lambda_cycle_b is None else config.lambda_cycle_b

    def augment(x: Tensor) -> Tensor:  # what every discriminator input goes through
        return diff_augment(x, config.diffaugment)

    # Generators: fool both discriminators, reconstruct through the cycle, keep identity.
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


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA device")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def pick_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision on GPUs (bf16 where supported); full fp32 on the CPU unless asked."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


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


def checkpoint_state(state: TrainState, config: TrainConfig, runtime: Runtime) -> dict[str, Any]:
    """The whole training state; under DDP the image pools of every rank are gathered."""
    pools = {"a": state.pool_a.state_dict(), "b": state.pool_b.state_dict()}
    all_pools: list[Any] = [pools]
    if runtime.world > 1:
        all_pools = [None] * runtime.world
        dist.all_gather_object(all_pools, pools)
    generators, discriminators = state.generators, state.discriminators
    return {
        "step": state.step,
        "config": config.model_dump(mode="json"),
        "generator_ab": generators.generator_ab.state_dict(),
        "generator_ba": generators.generator_ba.state_dict(),
        "discriminator_a": discriminators.discriminator_a.state_dict(),
        "discriminator_b": discriminators.discriminator_b.state_dict(),
        "optimizer_g": state.optimizer_g.state_dict(),
        "optimizer_d": state.optimizer_d.state_dict(),
        "scaler_g": state.scaler_g.state_dict(),
        "scaler_d": state.scaler_d.state_dict(),
        "pools": all_pools,
        "world_size": runtime.world,
        "rng_torch": torch.get_rng_state(),
    }


def restore_state(state: TrainState, saved: dict[str, Any], runtime: Runtime) -> None:
    state.generators.generator_ab.load_state_dict(saved["generator_ab"])
    state.generators.generator_ba.load_state_dict(saved["generator_ba"])
    state.discriminators.discriminator_a.load_state_dict(saved["discriminator_a"])
    state.discriminators.discriminator_b.load_state_dict(saved["discriminator_b"])
    state.optimizer_g.load_state_dict(saved["optimizer_g"])
    state.optimizer_d.load_state_dict(saved["optimizer_d"])
    state.scaler_g.load_state_dict(saved["scaler_g"])
    state.scaler_d.load_state_dict(saved["scaler_d"])
    pools = saved["pools"]
    if runtime.rank < len(pools):
        state.pool_a.load_state_dict(pools[runtime.rank]["a"], runtime.device)
        state.pool_b.load_state_dict(pools[runtime.rank]["b"], runtime.device)
    else:
        log.warning("the checkpoint has no image pool for rank %d; it starts empty", runtime.rank)
    torch.set_rng_state(saved["rng_torch"])
    state.step = int(saved["step"])


def check_replicas_in_sync(state: TrainState, runtime: Runtime) -> None:
    """Under DDP every rank must hold the same weights; a cheap per-tensor checksum proves it."""
    if runtime.world == 1:
        return
    modules = (state.generators, state.discriminators)
    checksum = torch.stack(
        [p.detach().double().sum() for module in modules for p in module.parameters()]
    ).to(runtime.device)
    gathered = [torch.empty_like(checksum) for _ in range(runtime.world)]
    dist.all_gather(gathered, checksum)
    worst = max(float((g - gathered[0]).abs().max()) for g in gathered)
    if worst != 0.0:
        raise RuntimeError(f"DDP replicas diverged at step {state.step} (checksum gap {worst})")
    if runtime.is_main:
        log.info("step %d: %d DDP replicas in sync", state.step, runtime.world)


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the current step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:  # a second signal: the person means it
            raise KeyboardInterrupt
        log.warning("%s received: saving a checkpoint after this step", signal.Signals(signum).name)
        self.signal = signum

    def agreed(self, runtime: Runtime) -> bool:
        """All ranks stop at the same step if any of them was signalled."""
        flag = torch.tensor([1.0 if self.signal is not None else 0.0], device=runtime.device)
        if runtime.world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)


def out_of_time(deadline: float | None, runtime: Runtime) -> bool:
    """True once the time budget is spent; all ranks agree, so they stop at the same step."""
    if deadline is None:
        return False
    flag = torch.tensor([1.0 if time.monotonic() > deadline else 0.0], device=runtime.device)
    if runtime.world > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def sample_images(config: TrainConfig) -> tuple[Tensor, Tensor]:
    """One fixed image per domain (first of testA/testB, else trainA/trainB), centre crop."""
    picks = []
    for side in ("A", "B"):
        folder = config.data / f"test{side}"
        if not folder.is_dir():
            folder = config.data / f"train{side}"
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
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
    state: TrainState, samples: tuple[Tensor, Tensor], path: Path, device: torch.device
) -> None:
    """A grid: real | translated | reconstructed, one row per direction."""
    generators = state.generators
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


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as model.json records it: folders by name, not by one machine's paths."""
    out = dict(config)
    for key in ("data", "init_from"):
        if out.get(key) is not None:
            out[key] = Path(out[key]).name
    return out


def export_package(saved: dict[str, Any], out: Path, run: Path | None = None) -> ModelPackage:
    """Write a model package from a checkpoint (for `package` and at the end of training).

    With the run folder, the package also records its commands and keeps its training log.
    """
    config = TrainConfig.model_validate(saved["config"])
    generator_config = config.generator_config()
    generators = {}
    for key in ("ab", "ba"):
        net = build_generator(generator_config)
        net.load_state_dict(saved[f"generator_{key}"])
        generators[key] = (net, generator_config)
    dataset_size = saved.get("epoch_length")
    step = int(saved["step"])
    steps_per_epoch = int(saved.get("steps_per_epoch") or 0)
    training = {
        "trainer": "python -m training",
        "commands": read_commands(run) if run else [],
        "config": portable_config(saved["config"]),
        "steps": step,
        "epochs": round(step / steps_per_epoch, 3) if steps_per_epoch else None,
        "images_per_step": config.batch_size * int(saved.get("world_size", 1)),
        "epoch_length": dataset_size,
        "last_losses": saved.get("last_losses"),
        "init_from": saved.get("init_from"),
        "packaged_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    version = f"{datetime.datetime.now(datetime.UTC):%Y.%m.%d}+step{step}"
    return write_package(
        out,
        name=config.package_name,
        version=version,
        domains=config.domains,
        generators=generators,
        native_resolution=config.load_size,
        training=training,
        files={LOG_NAME: run / LOG_NAME} if run and (run / LOG_NAME).is_file() else None,
    )


def read_commands(run: Path) -> list[list[str]]:
    path = run / "commands.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def setup_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def train(
    config: TrainConfig, run: Path, resume: bool = False, command: list[str] | None = None
) -> int:
    """Train until done or signalled; return the process exit code (0, or 128 + signal).

    `command` (the command line) is recorded in RUN/commands.jsonl and in the package.
    """
    rank, world, local_rank = setup_distributed()
    try:
        return _train(config, run, resume, command or [], rank, world, local_rank)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    run: Path,
    resume: bool,
    command: list[str],
    rank: int,
    world: int,
    local_rank: int,
) -> int:
    device = pick_device(config.device, local_rank)
    runtime = Runtime(device, pick_autocast(config.precision, device), rank, world)
    ckpt = checkpoint_path(run)
    saved = load_checkpoint(ckpt) if resume else None
    if not resume and ckpt.exists():
        raise FileExistsError(
            f"{run} already holds a checkpoint; "
            "pass --resume to continue it, or choose another --out"
        )

    folder_a = scan_folder(config.data / "trainA")
    folder_b = scan_folder(config.data / "trainB")
    dataset = UnpairedDataset(
        folder_a, folder_b, config.load_size, config.image_size, config.flip, config.seed
    )
    state = build_state(config, device, runtime.autocast_dtype == torch.float16, rank)
    init_from = None
    if saved is not None:
        restore_state(state, saved, runtime)
        init_from = saved.get("init_from")
        log.info("resumed %s at step %d", ckpt, state.step)
    elif config.init_from is not None:
        init_from = init_generators_from(
            config.init_from,
            state.generators.generator_ab,
            state.generators.generator_ba,
            config.generator_config(),
            config.domains,
        )
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        state.generators_train = DistributedDataParallel(state.generators, device_ids=device_ids)
        state.discriminators_train = DistributedDataParallel(
            state.discriminators, device_ids=device_ids
        )

    sampler = ResumableSampler(dataset.epoch_length, config.batch_size, rank, world, state.step)
    steps_per_epoch = sampler.steps_per_epoch
    total = (config.epochs + config.epochs_decay) * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps) if total else config.max_steps
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
    )
    if runtime.is_main:
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run / "config.json", config.model_dump(mode="json"))
        with open(run / "commands.jsonl", "a") as handle:
            handle.write(json.dumps(["python -m training", *command]) + "\n")
        log.info(
            "training %s on %s (%d process%s, %s), %d steps per epoch, steps %d..%d",
            config.package_name,
            device,
            world,
            "es" if world > 1 else "",
            runtime.autocast_dtype or "fp32",
            steps_per_epoch,
            state.step,
            total,
        )
    samples = sample_images(config) if runtime.is_main else None
    metrics_file = run / LOG_NAME
    sums = dict.fromkeys(LOSS_NAMES, 0.0)
    count = 0
    last_losses: dict[str, float] = {}
    interval_start = time.perf_counter()

    def save() -> None:
        check_replicas_in_sync(state, runtime)
        snapshot = checkpoint_state(state, config, runtime)
        if runtime.is_main:
            snapshot.update(
                steps_per_epoch=steps_per_epoch,
                epoch_length=dataset.epoch_length,
                last_losses=last_losses,
                init_from=init_from,
            )
            save_checkpoint(ckpt, snapshot)
            log.info("checkpoint at step %d: %s", state.step, ckpt)

    progress = tqdm(
        total=total,
        initial=state.step,
        desc="training",
        unit="step",
        disable=not runtime.is_main,
        dynamic_ncols=True,
    )
    batches = iter(loader)
    exit_code = 0
    deadline = None
    if config.max_minutes is not None:
        deadline = time.monotonic() + config.max_minutes * 60
    with StopRequest() as stop, progress:
        while state.step < total:
            lr = learning_rate(config, state.step, steps_per_epoch)
            for optimizer in (state.optimizer_g, state.optimizer_d):
                for group in optimizer.param_groups:
                    group["lr"] = lr
            losses = train_step(next(batches), state, config, runtime)
            progress.update(1)
            for name in LOSS_NAMES:
                sums[name] += losses[name]
            count += 1
            step = state.step
            if step % config.log_every == 0 or step == total:
                last_losses = {name: sums[name] / count for name in LOSS_NAMES}
                if runtime.is_main:
                    elapsed = time.perf_counter() - interval_start
                    record = {
                        "step": step,
                        "epoch": round(step / steps_per_epoch, 4),
                        "lr": lr,
                        **{k: round(v, 6) for k, v in last_losses.items()},
                        "images_per_second": round(count * config.batch_size * world / elapsed, 3),
                    }
                    with open(metrics_file, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    progress.set_postfix(
                        G=f"{last_losses['loss_G']:.3f}", D=f"{last_losses['loss_D']:.3f}"
                    )
                sums = dict.fromkeys(LOSS_NAMES, 0.0)
                count = 0
                interval_start = time.perf_counter()
            if runtime.is_main and samples is not None and step % config.sample_every == 0:
                save_samples(state, samples, run / "samples" / f"step_{step:07d}.png", device)
            if stop.agreed(runtime):
                save()
                signum = stop.signal or signal.SIGTERM
                log.warning("stopped at step %d; continue with --resume", step)
                exit_code = 128 + int(signum)
                break
            if out_of_time(deadline, runtime):
                log.info("--max-minutes %s reached at step %d", config.max_minutes, step)
                break
            if step % config.checkpoint_every == 0 and step < total:
                save()
    if exit_code:
        return exit_code
    save()
    if runtime.is_main:
        package = export_package(load_checkpoint(ckpt), run / "package", run)
        log.info(
            "model package written: %s (%s)", package.path, ", ".join(package.manifest.directions)
        )
    return 0
