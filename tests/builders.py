"""What tests build and share: where the fixtures are, tiny real packages and configs, and the
training and distilling command lines at a size that runs in seconds on two CPU cores.

Fixtures (pytest's) live in tests/conftest.py and build on these; tests import these directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cyclegan.generator import GeneratorConfig, build_generator, init_weights
from cyclegan.package import load_package, write_package
from tests.serverlib import ROOT

if TYPE_CHECKING:
    from training.config import TrainConfig

DATA = ROOT.parent / "shared" / "data" / "horse2zebra"  # the whole set, where CI has it
FIXTURES = ROOT / "tests" / "fixtures" / "horse2zebra"  # 8 real images per folder
SEASONS = ROOT / "tests" / "fixtures" / "summer2winter_yosemite"  # 4 per folder, names with spaces
EXAMPLES = {
    domain: ROOT / "examples" / f"{domain}.jpg" for domain in ("horse", "zebra", "summer", "winter")
}
PAIRS = (("horse", "zebra"), ("summer", "winter"))

SMALL = GeneratorConfig(ngf=8, n_blocks=2)  # a small generator of the default architecture

# Tiny networks keep every training test to seconds on two CPU cores.
TINY_FLAGS = [
    "--ngf", "8", "--n-blocks", "1", "--ndf", "8", "--n-layers", "2",
    "--image-size", "32", "--load-size", "36", "--workers", "0",
]  # fmt: skip


def real_images(split: str, count: int) -> list[Path]:
    """The first `count` fixture images of trainA, trainB, testA or testB (at most 8)."""
    files = sorted((FIXTURES / split).iterdir())[:count]
    if len(files) < count:
        raise ValueError(f"{FIXTURES / split} has {len(files)} images, not {count}")
    return files


def random_package(
    path: Path,
    config: GeneratorConfig,
    *,
    seed: int = 0,
    name: str = "h2z",
    domains: tuple[str, str] = ("horse", "zebra"),
    suffix: str = "",
) -> Path:
    """A package of two freshly initialised generators (no ONNX graph yet)."""
    torch.manual_seed(seed)
    nets = {}
    for key in ("ab", "ba"):
        nets[key] = (build_generator(config), config)
        init_weights(nets[key][0])
    write_package(
        path, name=name, version="1", domains=domains, generators=nets, native_resolution=64,
        direction_suffix=suffix,
    )  # fmt: skip
    return path


def make_package(path: Path, config: GeneratorConfig, seed: int = 0) -> Path:
    """A horse/zebra package named h2z with random weights of `config`."""
    return random_package(path, config, seed=seed)


def tiny_pair(path: Path, domains: tuple[str, str], suffix: str = "") -> Path:
    """A tiny package of random weights for `domains`, ONNX compiled, with its examples; a
    `-fast` suffix makes it a student (mobile blocks)."""
    from compile.__main__ import main as compile_main
    from training.example import store_examples

    config = GeneratorConfig(
        arch="mobile" if suffix else "resnet", ngf=4 if suffix else 8, n_blocks=1
    )
    name = f"{domains[0][0]}2{domains[1][0]}{suffix}"
    random_package(path, config, seed=len(suffix), name=name, domains=domains, suffix=suffix)
    assert compile_main(["onnx", "--package", str(path)]) == 0
    store_examples(load_package(path), {d: EXAMPLES[d] for d in domains})
    return path


def tiny_pairs(models: Path, students: bool = True) -> Path:
    """`models` holding a tiny package of each pair, and each one's student unless told not."""
    for domains in PAIRS:
        for suffix in ("", "-fast") if students else ("",):
            tiny_pair(models / f"{domains[0]}2{domains[1]}{suffix}", domains, suffix)
    return models


def tiny_config(data: Path, **overrides: object) -> TrainConfig:
    """A training config of tiny networks on 32 px crops (overrides win)."""
    from training.config import TrainConfig

    values = dict(
        data=data, ngf=8, n_blocks=1, ndf=8, n_layers=2, image_size=32, load_size=36,
        workers=0, pool_size=2,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig.model_validate(values)


def first_batch(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The run's first batch, as its loader would give it."""
    from training.data import UnpairedDataset, unpaired_loader

    dataset = UnpairedDataset.from_data(
        config.data, config.load_size, config.image_size, True, config.seed
    )
    return next(iter(unpaired_loader(dataset, config.batch_size)))


def train_cli(data: Path, out: Path, *extra: str) -> int:
    """`python -m training train` of tiny networks on `data` into `out`; its exit code."""
    from training.__main__ import main

    return main(["train", "--data", str(data), "--out", str(out), *TINY_FLAGS, *extra])


def tiny_distill(teacher: Path, data: Path) -> list[str]:
    """`distill` on 32 px crops with a 4-filter, 2-block student."""
    return [
        "distill", "--teacher", str(teacher), "--data", str(data), "--ngf", "4",
        "--n-blocks", "2", "--image-size", "32", "--load-size", "36",
    ]  # fmt: skip
