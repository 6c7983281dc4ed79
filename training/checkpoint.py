"""Checkpoints: everything needed to continue a run exactly, written atomically.

The file is written beside its final name, flushed to disk and renamed over the old one, so a
crash mid-write leaves the last good checkpoint intact. It holds only tensors and plain Python
values, and is read back with `torch.load(weights_only=True)`: no arbitrary unpickling.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "last.pt"


def checkpoint_path(run: Path) -> Path:
    return run / "checkpoints" / CHECKPOINT_NAME


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
