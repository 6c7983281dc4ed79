"""`python -m training interpolate`: a package whose weights lie between two related packages.

Network interpolation (ESRGAN, Wang et al. 2018, section 3.4): a generator trained for
fidelity (L1 to the teacher: high PSNR, faint stripes) and the same generator fine-tuned
with an adversarial term (bolder stripes, lower PSNR) sit close together in weight space, so
`alpha * A + (1 - alpha) * B` is a working generator that trades one for the other without
any training. It only means something for relatives: two packages must share a package in
their lineage (`init_from` and `interpolated_from` records, matched by the weights' hashes);
independently trained networks do not average into a working one, and are refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from cyclegan.generator import GeneratorConfig
from cyclegan.package import ModelPackage, PackageError, load_package
from training.init_from import init_from_record
from training.packaging import write_made_package

log = logging.getLogger(__name__)


def lineage(record: dict[str, Any]) -> list[dict[str, Any]]:
    """An `init_from_record` and the records of every package it came from."""
    found = [record]
    if record.get("init_from"):
        found += lineage(record["init_from"])
    for parent in (record.get("interpolated_from") or {}).get("packages", []):
        found += lineage(parent)
    return found


def same_package(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """By the weights' hashes where both records have them (older records: name and version,
    which two runs of one student on one day with the same steps could share)."""
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return bool(a["weights_sha256"] == b["weights_sha256"])
    return (a["name"], a["version"]) == (b["name"], b["version"])


def check_related(a: ModelPackage, b: ModelPackage) -> None:
    """Refuse, saying why, two packages whose weights cannot be averaged."""
    if a.manifest.domains != b.manifest.domains:
        raise PackageError(
            f"{a.path} translates {a.manifest.domains}, {b.path} {b.manifest.domains}"
        )
    if set(a.manifest.directions) != set(b.manifest.directions):
        raise PackageError(
            f"{a.path} serves {sorted(a.manifest.directions)}, {b.path} "
            f"{sorted(b.manifest.directions)}"
        )
    for name, direction in a.manifest.directions.items():
        other = b.direction(name)
        for field in ("generator", "native_resolution"):
            if getattr(direction, field) != getattr(other, field):
                raise PackageError(
                    f"{name}: {a.path} has {field} {getattr(direction, field)}, {b.path} "
                    f"{getattr(other, field)}"
                )
    ancestors = lineage(init_from_record(b))
    if not any(same_package(x, y) for x in lineage(init_from_record(a)) for y in ancestors):
        raise PackageError(
            f"{a.path} and {b.path} share no package in their lineage (init_from, "
            "interpolated_from): independently trained networks do not average into a working one"
        )


def mixed_weights(a: nn.Module, b: nn.Module, alpha: float) -> dict[str, Tensor]:
    """alpha * a + (1 - alpha) * b for floating-point weights; other buffers as in `b`."""
    weights_a = a.state_dict()
    return {
        key: alpha * weights_a[key] + (1 - alpha) * value if value.is_floating_point() else value
        for key, value in b.state_dict().items()
    }


def interpolate(
    a_path: Path, b_path: Path, alpha: float, out: Path, command: list[str]
) -> ModelPackage:
    """Write OUT, every direction alpha * A + (1 - alpha) * B; return it."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha {alpha}: must lie in [0, 1] (the weight of the first package)")
    if out.exists():
        raise FileExistsError(f"{out} exists; pick a new --out (it would be replaced)")
    a, b = load_package(a_path), load_package(b_path)
    check_related(a, b)
    domains = b.manifest.domains
    between = b.manifest.direction_between
    generators: dict[str, tuple[nn.Module, GeneratorConfig]] = {}
    for key, (source, target) in {"ab": domains, "ba": domains[::-1]}.items():
        name = between(source, target)
        net = b.load_generator(name)
        net.load_state_dict(mixed_weights(a.load_generator(name), net, alpha))
        generators[key] = (net, b.direction(name).generator)
    training = {
        **{
            k: v
            for k, v in b.manifest.training.items()
            if k in ("distilled_from", "macs_per_256px_image")
        },
        "trainer": "python -m training interpolate",
        "commands": [["python -m training", *command]],
        "interpolated_from": {
            "alpha": alpha,
            "packages": [init_from_record(a), init_from_record(b)],
        },
    }
    native = next(iter(b.manifest.directions.values())).native_resolution
    package = write_made_package(
        out,
        name=b.name,
        version_tag=f"mix{round(alpha * 100):02d}",
        training=training,
        domains=domains,
        generators=generators,
        native_resolution=native,
        direction_suffix=b.manifest.direction_suffix,
    )
    log.info("interpolated package written: %s (%.2f of %s)", package.path, alpha, a.path)
    return package
