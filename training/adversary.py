"""The adversarial state carried across machines: discriminators beside a package.

A package holds generators only. A run grown from one (`--init-from`) with fresh
discriminators first loses ground while they learn what the generators already make. So
training writes its discriminators beside the package, `<package>.adversary.safetensors`
(fp16, a sibling file, never inside the package: serving never loads it, and the container
images leave it out), and `--init-from` restores them when the file is there and fits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cyclegan.package import PackageError
from training.config import TrainConfig
from training.networks import Discriminators

log = logging.getLogger(__name__)

# What must match for saved discriminators to fit, by the kind of part.
FITS = {
    "discriminator": ("ndf", "n_layers", "d_norm"),
    "projected": ("feature_network", "seed"),
}


def adversary_path(package: Path) -> Path:
    return package.with_name(package.name + ".adversary.safetensors")


def _kind(part: str) -> str:
    return part.rsplit("_", 1)[0]  # "discriminator_a" -> "discriminator"


def save_adversary(package: Path, discriminators: Discriminators, config: TrainConfig) -> Path:
    """Write the discriminators' weights (fp16) and what they need to fit, beside `package`."""
    tensors: dict[str, torch.Tensor] = {}
    for part, module in discriminators.trained_parts().items():
        for key, value in module.state_dict().items():
            tensors[f"{part}.{key}"] = value.detach().to("cpu", torch.float16).contiguous()
    settings = {key: getattr(config, key) for keys in FITS.values() for key in keys}
    metadata = {"parts": json.dumps(sorted(discriminators.trained_parts())),
                "settings": json.dumps(settings)}  # fmt: skip
    path = adversary_path(package)
    save_file(tensors, str(path), metadata=metadata)
    return path


def restore_adversary(
    package: Path, discriminators: Discriminators, config: TrainConfig
) -> dict[str, Any] | None:
    """Load the parts this run has from the file beside `package`; None when there is none.

    Raises PackageError, saying what differs, when a saved part does not fit this run."""
    path = adversary_path(package)
    if not path.is_file():
        log.info("no %s: the discriminators start fresh", path.name)
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    try:
        saved_parts = set(json.loads(metadata["parts"]))
        settings = json.loads(metadata["settings"])
    except (KeyError, ValueError) as error:
        raise PackageError(f"{path}: not an adversary file of this project ({error})") from error
    tensors = load_file(str(path))
    restored = []
    for part, module in discriminators.trained_parts().items():
        if part not in saved_parts:
            continue
        differ = [
            f"{key} {settings.get(key)} (run: {getattr(config, key)})"
            for key in FITS[_kind(part)]
            if settings.get(key) != getattr(config, key)
        ]
        if differ:
            raise PackageError(
                f"{path}: its {part} does not fit this run: {', '.join(differ)}; "
                "match those settings, or move the file away to start fresh discriminators"
            )
        prefix = f"{part}."
        state = {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state)
        restored.append(part)
    fresh = sorted(set(discriminators.trained_parts()) - set(restored))
    log.info("discriminators restored from %s: %s%s", path.name, ", ".join(restored) or "none",
             f"; fresh: {', '.join(fresh)}" if fresh else "")  # fmt: skip
    return {"file": path.name, "restored": restored, "fresh": fresh}
