"""The shipped test images stay small, readable and as tests/fixtures/SOURCE.md describes them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.builders import FIXTURES, ROOT, SEASONS

SPLITS = ("trainA", "trainB", "testA", "testB")
EXAMPLES = ("horse.jpg", "zebra.jpg", "summer.jpg", "winter.jpg")


def fixture_files(folder: Path) -> list[Path]:
    return [path for split in SPLITS for path in sorted((folder / split).iterdir())]


def test_fixtures_are_small_cyclegan_layouts() -> None:
    assert [len(list((FIXTURES / split).iterdir())) for split in SPLITS] == [8, 8, 8, 8]
    assert [len(list((SEASONS / split).iterdir())) for split in SPLITS] == [4, 4, 4, 4]
    assert all(" " in path.name for path in fixture_files(SEASONS)), "the names keep their spaces"
    files = fixture_files(FIXTURES) + fixture_files(SEASONS)
    examples = [ROOT / "examples" / name for name in EXAMPLES]
    size = sum(path.stat().st_size for path in files + examples)
    assert size < 3_000_000, f"{size} bytes: keep the shipped images under 3 MB"
    for path in files + examples:
        with Image.open(path) as image:
            image.load()  # decodes fully
            assert image.size == (256, 256) and image.format == "JPEG"


@pytest.mark.parametrize("folder", [FIXTURES, SEASONS], ids=lambda f: f.name)
def test_fixture_digest_matches_source_md(folder: Path) -> None:
    # The SOURCE.md recipe: sha256sum of every file (sorted "split/name"), then of that listing.
    listing = "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(folder)}\n"
        for path in sorted(fixture_files(folder), key=lambda p: str(p.relative_to(folder)).encode())
    )
    digests = re.findall(r"gives `([0-9a-f]{64})`", (folder.parent / "SOURCE.md").read_text())
    assert hashlib.sha256(listing.encode()).hexdigest() in digests
