"""A training run's checkpoint -> a model package (`python -m training package`, end of a run).

The package records how it was made: the commands, the config (folders by name, never one
machine's paths), steps, losses, what it grew from; and it keeps the run's training log.
`write_made_package` is the one writer of that record, for the trainer, the distiller and
`training interpolate` alike.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cyclegan.generator import build_generator
from cyclegan.package import ModelPackage, write_package
from training import run_folder
from training.config import TrainConfig


def read_commands(run: Path) -> list[list[str]]:
    path = run / run_folder.COMMANDS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as model.json records it: folders by name, not by one machine's paths."""
    out = dict(config)
    for key in ("data", "init_from"):
        if out.get(key) is not None:
            out[key] = Path(out[key]).name
    return out


def packaged_weights(saved: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The generators a package holds, and what model.json says of them.

    The best-scoring on the validation split when the run validated (`--val-every`), else the
    weight average when it kept one (`--ema`), else the last weights."""
    ema = saved["config"].get("ema") or None
    if saved.get("selected"):
        chosen = saved["selected"]
        record = {
            "kind": "selected on the validation split", "step": chosen["step"],
            "scores": chosen["scores"], "ema_decay": ema,
        }  # fmt: skip
        return {key: chosen[f"generator_{key}"] for key in ("ab", "ba")}, record
    if "average_ab" in saved:
        average = {key: saved[f"average_{key}"] for key in ("ab", "ba")}
        return average, {"kind": "ema", "step": int(saved["step"]), "ema_decay": ema}
    last = {key: saved[f"generator_{key}"] for key in ("ab", "ba")}
    return last, {"kind": "last", "step": int(saved["step"])}


def write_made_package(
    out: Path,
    *,
    name: str,
    version_tag: str,
    training: dict[str, Any],
    run: Path | None = None,
    **package: Any,
) -> ModelPackage:
    """Write a package with how it was made: one timestamp for its version (`2026.12.02+TAG`)
    and its `packaged_at`, and the run's loss log beside model.json when the run kept one.
    `package` holds write_package's other arguments (domains, generators, ...)."""
    now = datetime.datetime.now(datetime.UTC)
    record = {**training, "packaged_at": now.isoformat(timespec="seconds")}
    loss_log = run / run_folder.LOSS_LOG if run else None
    return write_package(
        out,
        name=name,
        version=f"{now:%Y.%m.%d}+{version_tag}",
        training=record,
        files={run_folder.LOSS_LOG: loss_log} if loss_log and loss_log.is_file() else None,
        **package,
    )


def package_checkpoint(
    saved: dict[str, Any], out: Path, run: Path | None = None, fp16_weights: bool = False
) -> ModelPackage:
    """Write a model package from a checkpoint; with `run`, also its commands and log."""
    config = TrainConfig.model_validate(saved["config"])
    generator_config = config.generator_config()
    weights, weights_record = packaged_weights(saved)
    generators = {}
    for key in ("ab", "ba"):
        net = build_generator(generator_config)
        net.load_state_dict(weights[key])
        generators[key] = (net, generator_config)
    step = int(saved["step"])
    steps_per_epoch = int(saved.get("steps_per_epoch") or 0)
    training = {
        "trainer": "python -m training",
        "commands": read_commands(run) if run else [],
        "config": portable_config(saved["config"]),
        "steps": step,
        "epochs": round(step / steps_per_epoch, 3) if steps_per_epoch else None,
        "images_per_step": config.batch_size * int(saved.get("world_size", 1)),
        "epoch_length": saved.get("epoch_length"),
        "last_losses": saved.get("last_losses"),
        "init_from": saved.get("init_from"),
        "weights": weights_record,
    }
    return write_made_package(
        out,
        name=config.package_name,
        version_tag=f"step{step}",
        training=training,
        run=run,
        domains=config.domains,
        generators=generators,
        native_resolution=config.load_size,
        fp16_weights=fp16_weights,
    )
