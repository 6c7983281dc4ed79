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

from tests.serverlib import ROOT, Server, start_server, stop_server, wait_until

DATA = ROOT.parent / "shared" / "data" / "horse2zebra"  # the whole set, where CI has it
FIXTURES = ROOT / "tests" / "fixtures" / "horse2zebra"  # 8 real images per folder

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


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with one tiny package (random weights, ONNX compiled)."""
    from compile.__main__ import main as compile_main
    from tests.compile.test_onnx_export import SMALL, make_package

    models = tmp_path_factory.mktemp("models")
    package = make_package(models / "horse2zebra", SMALL)
    assert compile_main(["onnx", "--package", str(package)]) == 0
    return models


@pytest.fixture(scope="session")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server, started once for every test that talks to it."""
    running = start_server(model_dir, tmp_path_factory.mktemp("server"))
    try:
        wait_until(running, "/readyz", 200)
        yield running
    finally:
        stop_server(running)
