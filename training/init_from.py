"""`--init-from PACKAGE`: start a run's generators from a model package's weights.

Training then accumulates across machines from what is committed (a package is small; a
checkpoint is not). The discriminators and optimizers start fresh. The package's generators
must have the run's architecture, except that a `deconv` package may seed a `resize` run:
nearest upsampling followed by a 3x3 convolution with the transposed convolution's kernel
(flipped, in/out swapped) equals that transposed convolution followed by a 2x2 box blur, so
the converted generator starts as a slightly smoothed copy of the old one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.generator import GeneratorConfig
from cyclegan.package import ModelPackage, PackageError, load_package

log = logging.getLogger(__name__)


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def copy_generator(source: nn.Module, target: nn.Module) -> None:
    """Copy `source`'s weights into `target` layer by layer, converting deconv -> resize."""
    pairs = list(zip(_weighted_layers(source), _weighted_layers(target), strict=True))
    with torch.no_grad():
        for old, new in pairs:
            weight = old.weight
            if isinstance(old, nn.ConvTranspose2d) and not isinstance(new, nn.ConvTranspose2d):
                # ConvTranspose2d stores (in, out, k, k) and correlates with a flipped kernel.
                weight = weight.transpose(0, 1).flip(2, 3)
            if weight.shape != new.weight.shape:
                raise ValueError(
                    f"layer shapes differ: {tuple(weight.shape)} vs {new.weight.shape}"
                )
            new.weight.copy_(weight)
            if new.bias is not None and old.bias is not None:
                new.bias.copy_(old.bias)


def check_fits(package: ModelPackage, wanted: GeneratorConfig, domains: tuple[str, str]) -> None:
    """Refuse, saying what differs, a package whose generators this run cannot start from."""
    if tuple(package.manifest.domains) != tuple(domains):
        raise PackageError(
            f"{package.path}: translates {package.manifest.domains}, this run {domains}; "
            "pass --domains to match"
        )
    for name, direction in package.manifest.directions.items():
        have = direction.generator.model_dump(exclude={"upsample"})
        want = wanted.model_dump(exclude={"upsample"})
        differ = [f"{key} {have[key]} (run: {want[key]})" for key in want if have[key] != want[key]]
        if differ:
            raise PackageError(
                f"{package.path}: {name}'s generator does not fit this run: {', '.join(differ)}"
            )
        if (direction.generator.upsample, wanted.upsample) == ("resize", "deconv"):
            raise PackageError(
                f"{package.path}: {name} uses resize upsampling; a deconv run cannot start from it"
            )


def init_generators_from(
    path: Path, generator_ab: nn.Module, generator_ba: nn.Module, config: GeneratorConfig,
    domains: tuple[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Load both generators from the package at `path`; return what to record in model.json."""
    package = load_package(path)
    check_fits(package, config, domains)
    a, b = domains
    between = package.manifest.direction_between
    for key, net in ((between(a, b), generator_ab), (between(b, a), generator_ba)):
        copy_generator(package.load_generator(key), net)
    upsample_from = {d.generator.upsample for d in package.manifest.directions.values()}
    log.info("generators start from %s %s", package.name, package.manifest.version)
    return {
        **init_from_record(package),
        "upsample_converted": sorted(upsample_from) != [config.upsample],
    }


def init_from_record(package: ModelPackage) -> dict[str, Any]:
    """What model.json records of the package a run started from.

    Its commands and its own `init_from` come along, so a package grown over several runs (and
    machines) still says every command that made it; the weights' hashes tell two packages of
    one name and version apart (`training interpolate` checks kinship with them)."""
    training = package.manifest.training
    record = {
        "name": package.name,
        "version": package.manifest.version,
        "steps": training.get("steps"),
        "commands": training.get("commands", []),
        "init_from": training.get("init_from"),
        "weights_sha256": sorted(d.weights.sha256 for d in package.manifest.directions.values()),
    }
    if training.get("interpolated_from"):  # a package mixed from two (training interpolate)
        record["interpolated_from"] = training["interpolated_from"]
    return record
