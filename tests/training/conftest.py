"""Fixtures shared by the training tests."""

from pathlib import Path

import pytest

from tests.builders import train_cli


@pytest.fixture
def teacher(tiny_data: Path, tmp_path: Path) -> Path:
    """A tiny trained package (3 steps, resize upsampling) to distill from."""
    run = tmp_path / "teacher"
    assert train_cli(tiny_data, run, "--max-steps", "3", "--upsample", "resize") == 0
    return run / "package"
