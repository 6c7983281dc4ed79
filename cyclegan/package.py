"""The model package: the hand-over format between training, compile and serving.

A package is a directory holding `model.json` (validated by `PackageManifest`) and one
safetensors file per generator, plus what `compile` adds (ONNX graphs, TensorRT plans) and
`training example` adds (a photo and its translation per direction).
`load_package` checks the schema, that every file is present and that every hash matches,
and raises `PackageError` with a message that says exactly what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError, safe_open

from cyclegan.generator_config import GeneratorConfig

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    from torch import nn

MANIFEST = "model.json"
FORMAT_VERSION = 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class PackageError(Exception):
    """A model package that cannot be used; the message says why and where."""


class FileRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="path relative to the package directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Int8Info(FileRef):
    """Written by `compile quantize`: a static INT8 (QDQ) graph for CPUs that passed its gate."""

    source_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="the fp32 graph it was quantized from"
    )
    psnr_db: float = Field(description="vs the fp32 graph on the test images (pooled), measured")
    min_psnr_db: float = Field(description="the quality gate it had to pass")
    test_images: int = Field(ge=1)
    calibration_data: str = Field(
        description="the data set's folder name and split, or the package's example photo"
    )
    calibration_images: int = Field(ge=1)
    calibration_sha256: str = Field(description="of the calibration images' bytes, in order")
    weight_bits: Literal[7, 8] = Field(
        8, description="7 (reduce_range) computes alike on every CPU; 8 saturates without VNNI"
    )

    @model_validator(mode="after")
    def _passed(self) -> Int8Info:
        if not self.psnr_db >= self.min_psnr_db:
            raise ValueError(
                f"INT8 graph {self.file} measured {self.psnr_db:.2f} dB, below its gate "
                f"{self.min_psnr_db:.2f} dB"
            )
        return self


class OnnxInfo(FileRef):
    """Written by `compile onnx`; `int8` by `compile quantize`."""

    opset: int
    max_abs_error: float = Field(description="vs the PyTorch generator, fp32, measured")
    fp16: FileRef | None = None
    fp16_psnr_db: float | None = None
    int8: Int8Info | None = None

    @model_validator(mode="after")
    def _int8_matches(self) -> OnnxInfo:
        if self.int8 is not None and self.int8.source_sha256 != self.sha256:
            raise ValueError(
                f"INT8 graph {self.int8.file} was quantized from another fp32 graph than "
                f"{self.file}; run python -m compile quantize again"
            )
        return self


class Example(BaseModel):
    """Written by `training example`: one photo of the source domain and its translation, so a
    person can see what a direction does before giving it a picture of their own."""

    model_config = ConfigDict(extra="forbid")

    input: FileRef
    output: FileRef
    image: str = Field(description="the photo's file name, e.g. a test image of the data set")


class Direction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    generator: GeneratorConfig
    weights: FileRef
    native_resolution: int = Field(ge=4, description="image scale the generator was trained at")
    onnx: OnnxInfo | None = None
    example: Example | None = None


class PackageManifest(BaseModel):
    """The schema of model.json."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(min_length=1)
    domains: tuple[str, str]
    # Appended to every direction's name, so that two packages of the same domains (a model and
    # its fast student) serve side by side: "horse2zebra-fast".
    direction_suffix: str = Field("", pattern=r"^(-[a-z0-9]+)*$")
    directions: dict[str, Direction]
    training: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> PackageManifest:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is not supported (expected {FORMAT_VERSION})"
            )
        for domain in self.domains:
            if not re.match(NAME_PATTERN, domain):
                raise ValueError(f"domain name {domain!r} must match {NAME_PATTERN}")
        if not self.directions:
            raise ValueError("a package must serve at least one direction")
        for name, direction in self.directions.items():
            expected = self.direction_between(direction.source, direction.target)
            if name != expected:
                raise ValueError(f"direction {name!r} must be named {expected!r}")
            if {direction.source, direction.target} != set(self.domains):
                raise ValueError(f"direction {name!r} must translate between {self.domains}")
        return self

    def direction_between(self, source: str, target: str) -> str:
        """The name under which this package serves source -> target."""
        return direction_name(source, target) + self.direction_suffix


class ModelPackage:
    """A validated package on disk."""

    def __init__(self, path: Path, manifest: PackageManifest) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    def direction(self, name: str) -> Direction:
        try:
            return self.manifest.directions[name]
        except KeyError:
            valid = ", ".join(sorted(self.manifest.directions))
            raise PackageError(f"{self.path}: no direction {name!r} (it has: {valid})") from None

    def load_generator(self, direction: str) -> nn.Module:
        """The generator for `direction`, in eval mode, on the CPU (needs torch)."""
        from safetensors.torch import load_file

        from cyclegan.generator import build_generator

        spec = self.direction(direction)
        net = build_generator(spec.generator)
        state = load_file(self.path / spec.weights.file)
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise PackageError(
                f"{self.path / spec.weights.file}: weights do not fit the generator config "
                f"{spec.generator.model_dump()}: {error}"
            ) from None
        return net.eval()

    def save_manifest(self) -> None:
        """Rewrite model.json (e.g. after compile or evaluate added to it)."""
        write_json_atomic(self.path / MANIFEST, self.manifest.model_dump(mode="json"))


def direction_name(source: str, target: str) -> str:
    return f"{source}2{target}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; a package is read by other users
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _check_file(root: Path, ref: FileRef, what: str) -> None:
    path = root / ref.file
    if Path(ref.file).is_absolute() or ".." in Path(ref.file).parts:
        raise PackageError(
            f"{root / MANIFEST}: {what} file {ref.file!r} must stay inside the package"
        )
    if not path.is_file():
        raise PackageError(f"{root}: {what} file {ref.file!r} is missing")
    actual = sha256_file(path)
    if actual != ref.sha256:
        raise PackageError(
            f"{path}: sha256 is {actual}, model.json says {ref.sha256} "
            "(the file was changed or corrupted after the package was written)"
        )


def load_package(path: str | Path, check_hashes: bool = True) -> ModelPackage:
    """Read and validate a package directory; raise PackageError saying what is wrong."""
    root = Path(path)
    if not root.is_dir():
        raise PackageError(f"{root}: not a directory (expected a model package)")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise PackageError(f"{root}: no {MANIFEST} (is this a model package?)")
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PackageError(f"{manifest_path}: not valid JSON: {error}") from None
    try:
        manifest = PackageManifest.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in error.errors()
        )
        raise PackageError(f"{manifest_path}: invalid: {problems}") from None
    if check_hashes:
        for name, direction in manifest.directions.items():
            _check_file(root, direction.weights, f"{name} weights")
            if direction.onnx is not None:
                _check_file(root, direction.onnx, f"{name} ONNX")
                if direction.onnx.fp16 is not None:
                    _check_file(root, direction.onnx.fp16, f"{name} FP16 ONNX")
                if direction.onnx.int8 is not None:
                    _check_file(root, direction.onnx.int8, f"{name} INT8 ONNX")
            if direction.example is not None:
                _check_file(root, direction.example.input, f"{name} example input")
                _check_file(root, direction.example.output, f"{name} example output")
    for direction in manifest.directions.values():
        try:  # reads the header only: is it a safetensors file at all?
            with safe_open(root / direction.weights.file, framework="numpy"):
                pass
        except (SafetensorError, OSError) as error:
            raise PackageError(
                f"{root / direction.weights.file}: not a safetensors file: {error}"
            ) from None
    return ModelPackage(root, manifest)


def write_package(
    out: str | Path,
    *,
    name: str,
    version: str,
    domains: tuple[str, str],
    generators: dict[str, tuple[nn.Module, GeneratorConfig]],
    native_resolution: int,
    training: dict[str, Any] | None = None,
    files: dict[str, Path] | None = None,
    direction_suffix: str = "",
    fp16_weights: bool = False,
) -> ModelPackage:
    """Write a package; `generators` maps "ab"/"ba" to (network, its config).

    `files` maps names in the package to files copied in as they are (e.g. the training log).
    `fp16_weights` stores the weights in half precision (half the size); loading gives fp32
    networks, and the ONNX graphs exported from them match them as closely as ever.

    The package is assembled in a temporary directory beside `out` and moved into place,
    so a crash never leaves a half-written package under the final name.
    """
    import torch
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        directions: dict[str, Direction] = {}
        ends = {"ab": (domains[0], domains[1]), "ba": (domains[1], domains[0])}
        for key, (net, config) in generators.items():
            source, target = ends[key]
            filename = f"generator_{key}.safetensors"
            dtype = torch.float16 if fp16_weights else None
            state = {
                k: v.detach().cpu().to(dtype if v.is_floating_point() else None).contiguous()
                for k, v in net.state_dict().items()
            }
            save_file(state, staging / filename, metadata={"generator": config.model_dump_json()})
            directions[direction_name(source, target) + direction_suffix] = Direction(
                source=source,
                target=target,
                generator=config,
                weights=FileRef(file=filename, sha256=sha256_file(staging / filename)),
                native_resolution=native_resolution,
            )
        manifest = PackageManifest(
            name=name,
            version=version,
            domains=domains,
            direction_suffix=direction_suffix,
            directions=directions,
            training=training or {},
        )
        write_json_atomic(staging / MANIFEST, manifest.model_dump(mode="json"))
        for name, source in (files or {}).items():
            shutil.copyfile(source, staging / name)
        # mkdtemp and safetensors make owner-only files, but a package is usually written by
        # one user (CI, an init container) and served by another.
        os.chmod(staging, 0o755)
        for file in staging.iterdir():
            os.chmod(file, 0o644)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_package(out)
