"""The shipped test images stay small, readable and as tests/fixtures/SOURCE.md describes them."""

from __future__ import annotations

import hashlib
import re

from PIL import Image

from tests.conftest import FIXTURES, ROOT

SPLITS = ("trainA", "trainB", "testA", "testB")


def test_fixtures_are_a_small_horse2zebra_layout() -> None:
    files = [path for split in SPLITS for path in sorted((FIXTURES / split).iterdir())]
    assert [len(list((FIXTURES / split).iterdir())) for split in SPLITS] == [8, 8, 8, 8]
    examples = [ROOT / "examples" / "horse.jpg", ROOT / "examples" / "zebra.jpg"]
    size = sum(path.stat().st_size for path in files + examples)
    assert size < 2_000_000, f"{size} bytes: keep the shipped images under 2 MB"
    for path in files + examples:
        with Image.open(path) as image:
            image.load()  # decodes fully
            assert image.size == (256, 256) and image.format == "JPEG"


def test_fixture_digest_matches_source_md() -> None:
    # The SOURCE.md recipe: sha256sum of every file (sorted "split/name"), then of that listing.
    listing = "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(FIXTURES)}\n"
        for path in sorted(
            (p for split in SPLITS for p in (FIXTURES / split).iterdir()),
            key=lambda p: str(p.relative_to(FIXTURES)).encode(),
        )
    )
    documented = re.search(r"gives `([0-9a-f]{64})`", (FIXTURES.parent / "SOURCE.md").read_text())
    assert documented and hashlib.sha256(listing.encode()).hexdigest() == documented[1]
