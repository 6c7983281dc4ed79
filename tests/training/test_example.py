"""`python -m training example`: a photo and its translation per direction, stored in a package."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.package import PackageError, load_package
from tests.builders import EXAMPLES, SMALL, make_package
from training.__main__ import main


def test_examples_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", SMALL)
    flags = ["--image", f"horse={EXAMPLES['horse']}", "--image", f"zebra={EXAMPLES['zebra']}"]
    assert main(["example", "--package", str(package), *flags]) == 0
    for name in ("horse2zebra", "zebra2horse"):
        example = load_package(package).manifest.directions[name].example
        assert example is not None and example.image == f"{name.split('2')[0]}.jpg"
        for ref in (example.input, example.output):
            with Image.open(package / ref.file) as image:
                assert image.format == "JPEG" and image.size == (64, 64)  # served resolution
    (package / "examples" / "horse2zebra.output.jpg").write_bytes(b"changed")
    with pytest.raises(PackageError, match=r"horse2zebra\.output\.jpg: sha256 is"):
        load_package(package)


def test_bad_example_requests_are_clear_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    package = str(make_package(tmp_path / "pkg", SMALL))
    cases = {
        "horse": "expected DOMAIN=PATH",
        f"cat={EXAMPLES['horse']}": "no domain cat (its domains: horse, zebra)",
        f"horse={tmp_path / 'missing.jpg'}": "missing.jpg: no such image",
    }
    for flag, message in cases.items():
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert main(["example", "--package", package, "--image", flag]) == 2
        assert message in caplog.text
    assert load_package(package).manifest.directions["horse2zebra"].example is None
