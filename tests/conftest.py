"""Shared fixtures: real images in a tmp folder, tiny model folders, the real server, the gpu
marker. What they build with lives in tests/builders.py.

Real images come from tests/fixtures (shipped with the repository), so a clone on its own runs
the suite. Only tests that need the whole data set ask for the `horse2zebra` fixture, which
skips when ../shared/data/horse2zebra is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cyclegan.package import load_package
from tests.builders import DATA, EXAMPLES, SEASONS, real_images, tiny_pairs
from tests.serverlib import Server, start_server, stop_server, wait_until


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
            "(python -m training.tools.datasets fetch horse2zebra --to DIR, then link it there)"
        )
    return DATA


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
    from tests.builders import SMALL, make_package
    from training.example import store_examples

    models = tmp_path_factory.mktemp("models")
    package = make_package(models / "horse2zebra", SMALL)
    assert compile_main(["onnx", "--package", str(package)]) == 0
    store_examples(load_package(package), {d: EXAMPLES[d] for d in ("horse", "zebra")})
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
