"""TensorRT engine metadata: where plans live in a package and whether one fits this machine.

A TensorRT plan only runs on the GPU model and TensorRT version that built it, so each plan
sits in `engines/<gpu-slug>-trt<version>/<direction>.plan` with a JSON file beside it, and
`check_compatible` refuses a plan whose metadata names another GPU or TensorRT version.
This module imports neither TensorRT nor CUDA: it is pure bookkeeping.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

ENGINES_DIR = "engines"


class EngineMismatch(RuntimeError):
    """A plan built for another GPU or TensorRT version."""


class ProfileShapes(BaseModel):
    """One optimization profile: (batch, 3, height, width) at min, opt and max."""

    model_config = ConfigDict(extra="forbid")

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


class EngineMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: str
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision: str
    strongly_typed: bool
    profile: ProfileShapes
    input_name: str
    output_name: str
    onnx_file: str
    onnx_sha256: str
    plan_sha256: str
    built_at: str


def gpu_slug(gpu_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")


def engine_dir(package_path: Path, gpu_name: str, tensorrt_version: str) -> Path:
    return package_path / ENGINES_DIR / f"{gpu_slug(gpu_name)}-trt{tensorrt_version}"


def plan_paths(
    package_path: Path, gpu_name: str, tensorrt_version: str, direction: str
) -> tuple[Path, Path]:
    """(plan file, metadata file) for a direction on this GPU and TensorRT version."""
    folder = engine_dir(package_path, gpu_name, tensorrt_version)
    return folder / f"{direction}.plan", folder / f"{direction}.json"


def read_meta(path: Path) -> EngineMeta:
    return EngineMeta.model_validate(json.loads(path.read_text()))


def check_compatible(
    meta: EngineMeta, gpu_name: str, compute_capability: tuple[int, int], tensorrt_version: str
) -> None:
    """Raise EngineMismatch, with the rebuild command, unless the plan fits this machine."""
    problems = []
    if meta.gpu_name != gpu_name or tuple(meta.compute_capability) != tuple(compute_capability):
        built_sm = ".".join(map(str, meta.compute_capability))
        here_sm = ".".join(map(str, compute_capability))
        problems.append(
            f"it was built on {meta.gpu_name} (sm {built_sm}), this is {gpu_name} (sm {here_sm})"
        )
    if meta.tensorrt_version != tensorrt_version:
        problems.append(
            f"it was built with TensorRT {meta.tensorrt_version}, "
            f"this is TensorRT {tensorrt_version}"
        )
    if problems:
        raise EngineMismatch(
            f"TensorRT plan for {meta.direction} does not fit this machine: "
            + "; ".join(problems)
            + ". Rebuild it here with: python -m compile tensorrt --package PKG"
        )
