"""The model packages `make serve` serves (models/): each pair's model and its fast student.

Each is checked by what it does on real test photos of its pair (the fixtures), through the
runtime the service uses: the model changes the picture, the student stays close to its
teacher (PSNR measured here), and the INT8 graph the CPU serves stays close to fp32.
"""

from __future__ import annotations

import numpy as np
import pytest

from compile.quantize import weight_bits
from cyclegan.backends import create_backend
from cyclegan.generator import count_macs
from cyclegan.imaging import image_to_tensor, psnr_db
from cyclegan.package import ModelPackage, load_package
from tests.builders import FIXTURES, ROOT, SEASONS
from training.data import load_image

MODELS = ROOT / "models"
PAIRS = {  # pair -> its fixtures (testA, testB)
    "horse2zebra": FIXTURES,
    "summer2winter": SEASONS,
}
MAX_MACS = 6.5e9  # per 256x256 image: real time on a CPU
MIN_STUDENT_PSNR_DB = 25.0
MAX_SIZE_BYTES = 24 * 1024 * 1024  # a pair's model: weights, three graphs, pictures


def photos(pair: str, split: str) -> np.ndarray:
    """The pair's fixture photos of one split, (N, 3, 256, 256) in [-1, 1]."""
    files = sorted((PAIRS[pair] / split).iterdir())
    return np.stack([image_to_tensor(load_image(f)).numpy() for f in files])


def translate(
    package: ModelPackage, direction: str, images: np.ndarray, precision: str
) -> np.ndarray:
    backend = create_backend("onnxruntime", package, direction, "cpu", precision=precision)
    return np.concatenate([backend.translate(image[None]) for image in images])


def test_every_pair_ships_a_model_and_a_student() -> None:
    names = sorted(p.name for p in MODELS.iterdir() if (p / "model.json").is_file())
    assert names == sorted([*PAIRS, *(f"{pair}-fast" for pair in PAIRS)])


@pytest.mark.parametrize("pair", PAIRS)
def test_the_model_is_complete_compiled_and_within_budget(pair: str) -> None:
    package = load_package(MODELS / pair)  # schema, files and hashes
    manifest = package.manifest
    assert manifest.training["commands"], "every command that made it is on record"
    for name, direction in manifest.directions.items():
        assert direction.generator.upsample == "resize"  # no checkerboard
        assert count_macs(direction.generator, 256, 256) <= MAX_MACS
        assert direction.onnx is not None and direction.onnx.int8 is not None
        # 7-bit weights: the INT8 graph computes alike on CPUs with and without VNNI
        assert (
            direction.onnx.int8.weight_bits
            == weight_bits(package.path / direction.onnx.int8.file)
            == 7
        )
        assert direction.example is not None, f"{name}: the page shows an example"
    assert manifest.evaluation is not None
    assert set(manifest.evaluation["directions"]) == set(manifest.directions)
    assert (package.path / "evaluation.png").is_file() and (package.path / "curves.png").is_file()
    size = sum(f.stat().st_size for f in package.path.rglob("*") if f.is_file())
    assert size < MAX_SIZE_BYTES, f"{size / 1e6:.1f} MB"


@pytest.mark.parametrize("pair", PAIRS)
def test_the_model_translates_its_test_photos_and_int8_stays_close(pair: str) -> None:
    package = load_package(MODELS / pair)
    for direction, split in zip(package.manifest.directions, ("testA", "testB"), strict=True):
        images = photos(pair, split)
        fp32 = translate(package, direction, images, "fp32")
        assert np.isfinite(fp32).all() and np.abs(fp32 - images).mean() > 0.02  # it changes them
        assert psnr_db(translate(package, direction, images, "int8"), fp32) >= 30.0


@pytest.mark.parametrize("pair", PAIRS)
def test_the_student_is_distilled_from_this_model_and_close_to_it(pair: str) -> None:
    teacher, student = load_package(MODELS / pair), load_package(MODELS / f"{pair}-fast")
    distilled_from = student.manifest.training["distilled_from"]
    assert (distilled_from["name"], distilled_from["version"]) == (
        teacher.name, teacher.manifest.version,
    )  # fmt: skip
    for direction, split in zip(teacher.manifest.directions, ("testA", "testB"), strict=True):
        fast = f"{direction}-fast"
        macs = count_macs(student.direction(fast).generator, 256, 256)
        assert macs <= count_macs(teacher.direction(direction).generator, 256, 256) / 4
        images = photos(pair, split)
        close = psnr_db(
            translate(student, fast, images, "auto"), translate(teacher, direction, images, "auto")
        )
        assert close >= MIN_STUDENT_PSNR_DB, f"{fast}: {close:.2f} dB against its teacher"
