"""Shared fixtures: a few real horse2zebra images, tiny configs, the gpu marker.

Real images come from tests/fixtures/horse2zebra (8 per folder, shipped with the repository),
so a clone on its own runs the suite. Only tests that need the whole data set ask for the
`horse2zebra` fixture, which skips when ../shared/data/horse2zebra is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cyclegan.package import load_package
from tests.serverlib import ROOT, Server, start_server, stop_server, wait_until

DATA = ROOT.parent / "shared" / "data" / "horse2zebra"  # the whole set, where CI has it
FIXTURES = ROOT / "tests" / "fixtures" / "horse2zebra"  # 8 real images per folder
SEASONS = ROOT / "tests" / "fixtures" / "summer2winter_yosemite"  # 4 per folder, names with spaces

# Tiny networks keep every training test to seconds on two CPU cores.
TINY_FLAGS = [
    "--ngf", "8", "--n-blocks", "1", "--ndf", "8", "--n-layers", "2",
    "--image-size", "32", "--load-size", "36", "--workers", "0",
]  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def horse2zebra() -> Path:
    """The whole horse2zebra data set, for the few tests that need hundreds of images."""
    if not all((DATA / split).is_dir() for split in ("trainA", "trainB", "testA", "testB")):
        pytest.skip(
            f"needs the whole horse2zebra data set at {DATA}, which is absent "
            "(python -m training.datasets fetch horse2zebra --to DIR, then link it there)"
        )
    return DATA


def real_images(split: str, count: int) -> list[Path]:
    """The first `count` fixture images of trainA, trainB, testA or testB (at most 8)."""
    files = sorted((FIXTURES / split).iterdir())[:count]
    if len(files) < count:
        raise ValueError(f"{FIXTURES / split} has {len(files)} images, not {count}")
    return files


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """DIR/trainA, trainB, testA, testB with a few real images each (copied into tmp)."""
    root = tmp_path / "data"
    for split, count in (("trainA", 6), ("trainB", 5), ("testA", 3), ("testB", 3)):
        (root / split).mkdir(parents=True)
        for file in real_images(split, count):
            shutil.copy(file, root / split / file.name)
    return root


@pytest.fixture
def seasons_data(tmp_path: Path) -> Path:
    """The summer2winter fixtures under a folder whose name has a space too (copied into tmp)."""
    root = tmp_path / "summer and winter"
    shutil.copytree(SEASONS, root)
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with one tiny package (random weights, ONNX compiled, examples)."""
    from compile.__main__ import main as compile_main
    from tests.compile.test_onnx_export import SMALL, make_package
    from training.example import store_examples

    models = tmp_path_factory.mktemp("models")
    package = make_package(models / "horse2zebra", SMALL)
    assert compile_main(["onnx", "--package", str(package)]) == 0
    store_examples(load_package(package), {d: EXAMPLES[d] for d in ("horse", "zebra")})
    return models


EXAMPLES = {
    domain: ROOT / "examples" / f"{domain}.jpg" for domain in ("horse", "zebra", "summer", "winter")
}


def tiny_pair(path: Path, domains: tuple[str, str], suffix: str = "") -> Path:
    """A tiny package of random weights for `domains`, ONNX compiled, with its examples; a
    `-fast` suffix makes it a student (mobile blocks)."""
    from compile.__main__ import main as compile_main
    from cyclegan.generator import GeneratorConfig, build_generator, init_weights
    from cyclegan.package import write_package
    from training.example import store_examples

    torch.manual_seed(len(suffix))
    config = GeneratorConfig(
        arch="mobile" if suffix else "resnet", ngf=4 if suffix else 8, n_blocks=1
    )
    nets = {}
    for key in ("ab", "ba"):
        nets[key] = (build_generator(config), config)
        init_weights(nets[key][0])
    name = f"{domains[0][0]}2{domains[1][0]}{suffix}"
    write_package(
        path, name=name, version="1", domains=domains, generators=nets, native_resolution=64,
        direction_suffix=suffix,
    )  # fmt: skip
    assert compile_main(["onnx", "--package", str(path)]) == 0
    store_examples(load_package(path), {d: EXAMPLES[d] for d in domains})
    return path


PAIRS = (("horse", "zebra"), ("summer", "winter"))


def tiny_pairs(models: Path, students: bool = True) -> Path:
    """`models` holding a tiny package of each pair, and each one's student unless told not."""
    for domains in PAIRS:
        for suffix in ("", "-fast") if students else ("",):
            tiny_pair(models / f"{domains[0]}2{domains[1]}{suffix}", domains, suffix)
    return models


@pytest.fixture(scope="session")
def two_pairs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server on what `make serve` serves, in small: two pairs, each with its student
    (horse2zebra, zebra2horse, summer2winter, winter2summer, and their -fast twins)."""
    models = tiny_pairs(tmp_path_factory.mktemp("two-pairs"))
    yield from ready_server(models, tmp_path_factory.mktemp("two-pairs-server"))


@pytest.fixture(scope="session")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server, started once for every test that talks to it."""
    yield from ready_server(model_dir, tmp_path_factory.mktemp("server"))


def ready_server(models: Path, logs: Path) -> Iterator[Server]:
    """A real server on `models`, ready, stopped when the caller is done with it."""
    running = start_server(models, logs)
    try:
        wait_until(running, "/readyz", 200)
        yield running
    finally:
        stop_server(running)
