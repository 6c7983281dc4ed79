"""The CycleGAN training loop.

`train(config, run)` trains on `config.data` and writes, under RUN: metrics.jsonl (the loss
log), samples/ (grids), checkpoints/last.pt and, at the end, package/ (a model package).
Launched by `torchrun` it runs data-parallel (DDP): each process takes its share of every
batch and gradients are averaged. The parts live beside it: networks.py (the four networks
and the state), step.py (one step), schedule.py (lr), checkpoint.py, placement.py (device and
DDP), stopping.py (signals, time budget), samples.py, packaging.py.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cyclegan.package import write_json_atomic
from training import run_folder
from training.adversary import restore_adversary, save_adversary
from training.checkpoint import (
    checkpoint_path,
    checkpoint_state,
    load_checkpoint,
    restore_state,
    save_checkpoint,
)
from training.config import TrainConfig
from training.data import ImageFolder, UnpairedDataset, scan_folder, steps_in_epoch, unpaired_loader
from training.init_from import init_generators_from
from training.loss_log import LossLog
from training.networks import TrainState, WeightAverage, build_state
from training.packaging import package_checkpoint
from training.placement import (
    Placement,
    check_replicas_in_sync,
    pick_autocast,
    pick_device,
    setup_distributed,
)
from training.samples import sample_images, save_samples
from training.schedule import lr_scheduler
from training.step import train_step
from training.stopping import StopRequest, TimeBudget
from training.validation import SELECTION, Validator, split_validation

log = logging.getLogger(__name__)


def train(
    config: TrainConfig, run: Path, resume: bool = False, command: list[str] | None = None
) -> int:
    """Train until done, out of time or signalled; return the exit code (0, or 128 + signal).

    `command` (the command line) is recorded in RUN/commands.jsonl and in the package.
    """
    rank, world, local_rank = setup_distributed()
    try:
        device = pick_device(config.device, local_rank)
        placement = Placement(device, pick_autocast(config.precision, device), rank, world)
        return _train(config, run, resume, command or [], placement)
    finally:
        if world > 1:
            dist.destroy_process_group()


def start_state(
    config: TrainConfig, placement: Placement, saved: dict[str, Any] | None
) -> tuple[TrainState, dict[str, Any] | None]:
    """Fresh, resumed from a checkpoint, or grown from a package (--init-from); DDP-wrapped.

    Returns the state and what the generators grew from (for model.json).
    """
    fp16 = placement.autocast_dtype == torch.float16
    state = build_state(config, placement.device, fp16, placement.rank)
    init_record = None
    if saved is not None:
        restore_state(state, saved, placement)
        init_record = saved.get("init_from")
        log.info("resumed at step %d", state.step)
    elif config.init_from is not None:
        generators = state.generators
        init_record = init_generators_from(
            config.init_from, generators.generator_ab, generators.generator_ba,
            config.generator_config(), config.domains,
        )  # fmt: skip
        init_record["adversary"] = restore_adversary(config.init_from, state.discriminators, config)
        if state.average is not None:  # the average starts from the grown weights
            state.average = WeightAverage(generators, config.ema)
    if placement.world > 1:
        ids = [placement.device.index] if placement.device.type == "cuda" else None
        state.generators_train = DistributedDataParallel(state.generators, device_ids=ids)
        state.discriminators_train = DistributedDataParallel(state.discriminators, device_ids=ids)
    return state, init_record


def _train(
    config: TrainConfig, run: Path, resume: bool, command: list[str], placement: Placement
) -> int:
    ckpt = checkpoint_path(run)
    if not resume and ckpt.exists():
        raise FileExistsError(
            f"{run} already holds a checkpoint; "
            "pass --resume to continue it, or choose another --out"
        )
    saved = load_checkpoint(ckpt) if resume else None
    folder_a, folder_b = scan_folder(config.data / "trainA"), scan_folder(config.data / "trainB")
    train_a, held_a = split_validation(folder_a.files, config.val_fraction)
    train_b, held_b = split_validation(folder_b.files, config.val_fraction)
    dataset = UnpairedDataset(
        ImageFolder(folder_a.path, train_a, folder_a.skipped),
        ImageFolder(folder_b.path, train_b, folder_b.skipped),
        config.load_size, config.image_size, config.flip, config.seed,
    )  # fmt: skip
    state, init_record = start_state(config, placement, saved)
    selected = saved.get("selected") if saved else None
    minutes_before = float(saved.get("minutes_trained", 0.0)) if saved else 0.0
    steps_per_epoch = steps_in_epoch(dataset.epoch_length, config.batch_size, placement.world)
    total = (config.epochs + config.epochs_decay) * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps) if total else config.max_steps
    loader = unpaired_loader(
        dataset, config.batch_size, rank=placement.rank, world=placement.world,
        start_step=state.step, workers=config.workers,
        pin_memory=placement.device.type == "cuda",
    )  # fmt: skip
    schedulers = [
        lr_scheduler(optimizer, config, steps_per_epoch, state.step)
        for optimizer in (state.optimizer_g, state.optimizer_d)
    ]
    if placement.is_main:
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run / run_folder.CONFIG, config.model_dump(mode="json"))
        with open(run / run_folder.COMMANDS, "a") as handle:
            handle.write(json.dumps(["python -m training", *command]) + "\n")
        log.info(
            "training %s on %s (%d process%s, %s), %d steps per epoch, steps %d..%d",
            config.package_name, placement.device, placement.world,
            "es" if placement.world > 1 else "",
            str(placement.autocast_dtype or "fp32").removeprefix("torch."),
            steps_per_epoch, state.step, total,
        )  # fmt: skip
    samples = sample_images(config, (held_a, held_b)) if placement.is_main else None
    losses_log = LossLog(run / run_folder.LOSS_LOG, config.batch_size * placement.world)
    validator = None
    if config.val_every and placement.is_main:
        log.info("validation: %d + %d held-out images", len(held_a), len(held_b))
        validator = Validator(config, held_a, held_b, placement)
    budget = TimeBudget(config.max_minutes)

    def validate() -> None:
        """Score the served generators; keep them in the checkpoint when they are the best."""
        nonlocal selected
        assert validator is not None
        scores = validator.score(state.served_generators)
        if state.average is not None:  # how much the average gains over the last weights
            raw = validator.score(state.generators)
            scores |= {f"raw_{key}": value for key, value in raw.items()}
        minutes = minutes_before + budget.elapsed_minutes()
        record = {"step": state.step, "minutes": round(minutes, 2), **scores}
        with open(run / run_folder.VALIDATION_LOG, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        best = selected is None or scores[SELECTION] < selected["scores"][SELECTION]
        log.info("validation at step %d: %s %.2f%s", state.step, SELECTION, scores[SELECTION],
                 " (best so far)" if best else "")  # fmt: skip
        if best:
            served = state.served_generators
            selected = {
                "step": state.step, "scores": scores,
                "generator_ab": {k: v.clone() for k, v in served.generator_ab.state_dict().items()},
                "generator_ba": {k: v.clone() for k, v in served.generator_ba.state_dict().items()},
            }  # fmt: skip

    def save() -> None:
        check_replicas_in_sync((state.generators, state.discriminators), placement, state.step)
        snapshot = checkpoint_state(state, config, placement)
        if placement.is_main:
            snapshot.update(
                steps_per_epoch=steps_per_epoch, epoch_length=dataset.epoch_length,
                last_losses=losses_log.last, init_from=init_record,
                minutes_trained=minutes_before + budget.elapsed_minutes(),
            )  # fmt: skip
            if selected is not None:
                snapshot["selected"] = selected
            save_checkpoint(ckpt, snapshot)
            log.info("checkpoint at step %d: %s", state.step, ckpt)

    batches = iter(loader)
    progress = tqdm(
        total=total, initial=state.step, desc="training", unit="step",
        disable=not placement.is_main, dynamic_ncols=True,
    )  # fmt: skip
    with StopRequest() as stop, progress, logging_redirect_tqdm():
        while state.step < total:
            lr = schedulers[0].get_last_lr()[0]
            losses = train_step(next(batches), state, config, placement)
            for scheduler in schedulers:
                scheduler.step()
            progress.update(1)
            losses_log.add(losses)
            step = state.step
            if step % config.log_every == 0 or step == total:
                losses_log.flush(step, lr, write=placement.is_main, epoch=step / steps_per_epoch)
                progress.set_postfix(
                    G=f"{losses_log.last['loss_G']:.3f}", D=f"{losses_log.last['loss_D']:.3f}"
                )
            if validator is not None and step % config.val_every == 0:
                validate()
            if samples is not None and step % config.sample_every == 0:
                save_samples(
                    state.served_generators,
                    samples,
                    run / run_folder.SAMPLES / f"step_{step:07d}.png",
                    placement.device,
                )
            if stop.agreed(placement):
                save()
                log.warning("stopped at step %d; continue with --resume", step)
                return 128 + int(stop.signal or signal.SIGTERM)
            if budget.spent(placement):
                log.info("--max-minutes %s reached at step %d", budget.minutes, step)
                break
            if step % config.checkpoint_every == 0 and step < total:
                save()
    if validator is not None and state.step % config.val_every:
        validate()  # the last weights get their chance too
    save()
    if placement.is_main:
        package = package_checkpoint(load_checkpoint(ckpt), run / run_folder.PACKAGE, run)
        adversary = save_adversary(package.path, state.discriminators, config)
        log.info(
            "model package written: %s (%s); its discriminators beside it: %s",
            package.path, ", ".join(package.manifest.directions), adversary.name,
        )  # fmt: skip
    return 0
