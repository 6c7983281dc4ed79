"""Checkpoints: everything needed to continue a run exactly, written atomically.

The file is written beside its final name, flushed to disk and renamed over the old one, so a
crash mid-write leaves the last good checkpoint intact. It holds only tensors and plain Python
values, and is read back with `torch.load(weights_only=True)`: no arbitrary unpickling.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from training import run_folder
from training.config import TrainConfig
from training.networks import TrainState
from training.placement import Placement

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"  # in RUN/checkpoints/


def checkpoint_path(run: Path) -> Path:
    return run / run_folder.CHECKPOINTS / CHECKPOINT_NAME


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (has this run saved one yet?)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path}: not a training checkpoint of this project")
    return state


def checkpoint_state(
    state: TrainState, config: TrainConfig, placement: Placement
) -> dict[str, Any]:
    """The whole training state; under DDP the image pools of every rank are gathered."""
    pools = {"a": state.pool_a.state_dict(), "b": state.pool_b.state_dict()}
    all_pools: list[Any] = [pools]
    if placement.world > 1:
        all_pools = [None] * placement.world
        dist.all_gather_object(all_pools, pools)
    generators = state.generators
    average = {}
    if state.average is not None:
        average = {
            "average_ab": state.average.generators.generator_ab.state_dict(),
            "average_ba": state.average.generators.generator_ba.state_dict(),
            "average_updates": state.average.updates,
        }
    discriminators = {
        name: part.state_dict() for name, part in state.discriminators.trained_parts().items()
    }
    return {
        "step": state.step,
        "config": config.model_dump(mode="json"),
        "generator_ab": generators.generator_ab.state_dict(),
        "generator_ba": generators.generator_ba.state_dict(),
        **average,
        **discriminators,
        "optimizer_g": state.optimizer_g.state_dict(),
        "optimizer_d": state.optimizer_d.state_dict(),
        "scaler_g": state.scaler_g.state_dict(),
        "scaler_d": state.scaler_d.state_dict(),
        "pools": all_pools,
        "world_size": placement.world,
        "rng_torch": torch.get_rng_state(),
    }


def restore_state(state: TrainState, saved: dict[str, Any], placement: Placement) -> None:
    state.generators.generator_ab.load_state_dict(saved["generator_ab"])
    state.generators.generator_ba.load_state_dict(saved["generator_ba"])
    for name, part in state.discriminators.trained_parts().items():
        part.load_state_dict(saved[name])
    if state.average is not None:
        state.average.generators.generator_ab.load_state_dict(saved["average_ab"])
        state.average.generators.generator_ba.load_state_dict(saved["average_ba"])
        state.average.updates = int(saved["average_updates"])
    state.optimizer_g.load_state_dict(saved["optimizer_g"])
    state.optimizer_d.load_state_dict(saved["optimizer_d"])
    state.scaler_g.load_state_dict(saved["scaler_g"])
    state.scaler_d.load_state_dict(saved["scaler_d"])
    pools = saved["pools"]
    if placement.rank < len(pools):
        state.pool_a.load_state_dict(pools[placement.rank]["a"], placement.device)
        state.pool_b.load_state_dict(pools[placement.rank]["b"], placement.device)
    else:
        log.warning("the checkpoint has no image pool for rank %d; it starts empty", placement.rank)
    torch.set_rng_state(saved["rng_torch"])
    state.step = int(saved["step"])
