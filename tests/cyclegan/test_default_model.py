"""The embedded default model (models/horse2zebra): valid, small, compiled, evaluated."""

from __future__ import annotations

import numpy as np

from compile.quantize import weight_bits
from cyclegan.backends import create_backend
from cyclegan.generator import count_macs
from cyclegan.imaging import image_to_tensor
from cyclegan.package import load_package
from tests.conftest import ROOT, real_images
from training.data import load_image

MODEL = ROOT / "models" / "horse2zebra"


def test_shipped_model_loads_validates_and_says_how_it_was_made() -> None:
    package = load_package(MODEL)  # schema, files and hashes
    manifest = package.manifest
    assert manifest.domains == ("horse", "zebra")
    assert set(manifest.directions) == {"horse2zebra", "zebra2horse"}
    assert manifest.training["steps"] >= 1000 and manifest.training["commands"]
    assert manifest.training["config"]["ngf"] == 24
    assert manifest.training["init_from"]["steps"] >= 1000  # grown from stage 1
    for direction in manifest.directions.values():
        assert direction.generator.upsample == "resize"  # no checkerboard
        assert count_macs(direction.generator, 256, 256) <= 6.5e9  # real-time on a CPU
        assert direction.onnx is not None and direction.onnx.max_abs_error <= 1e-4
        # the CPU serves INT8 graphs with 7-bit weights: the gate holds on CPUs without VNNI
        int8 = direction.onnx.int8
        assert int8 is not None and int8.weight_bits == weight_bits(MODEL / int8.file) == 7
    assert manifest.evaluation is not None
    assert set(manifest.evaluation["directions"]) == {"horse2zebra", "zebra2horse"}
    assert manifest.evaluation["directions"]["horse2zebra"]["source_images"] == 120  # all of testA
    assert manifest.evaluation["classifier"]["test_accuracy"] >= 0.93
    for result in manifest.evaluation["directions"].values():
        assert result["judgement"]["verdict"] in ("good", "weak")
    assert (MODEL / "metrics.jsonl").is_file() and (MODEL / "curves.png").is_file()


def test_shipped_model_stays_small() -> None:
    # 2 x 2.2 MB fp16 weights + 2 x (4.4 + 2.2 + 1.3) MB ONNX graphs (fp32, fp16, INT8: the
    # CPU image needs no torch) + the evaluation grid and curves: about 21.5 MB. This bound
    # catches an accidental bigger model.
    size = sum(f.stat().st_size for f in MODEL.rglob("*") if f.is_file())
    assert size < 24 * 1024 * 1024, f"{size / 1e6:.1f} MB"


def test_shipped_model_translates_a_real_test_image() -> None:
    package = load_package(MODEL)
    image = image_to_tensor(load_image(real_images("testA", 1)[0]))[
        None
    ].numpy()  # (1, 3, 256, 256)
    out = create_backend("onnxruntime", package, "horse2zebra", device="cpu").translate(image)
    assert out.shape == image.shape and np.isfinite(out).all()
    assert np.abs(out - image).mean() > 0.02  # it changes the picture


FAST = ROOT / "models" / "horse2zebra-fast"


def test_shipped_fast_student_is_small_distilled_from_this_default_and_close_to_it() -> None:
    student, teacher = load_package(FAST), load_package(MODEL)
    training = student.manifest.training
    assert training["distilled_from"]["name"] == teacher.name
    assert training["distilled_from"]["version"] == teacher.manifest.version  # the current one
    macs = training["macs_per_256px_image"]
    assert macs <= training["distilled_from"]["macs_per_256px_image"] / 4  # issue 13, section 1
    for direction in student.manifest.directions.values():
        assert count_macs(direction.generator, 256, 256) == macs
        assert direction.onnx is not None and direction.onnx.max_abs_error <= 1e-4
    evaluation = student.manifest.evaluation
    assert evaluation is not None and set(evaluation["directions"]) == set(
        student.manifest.directions
    )
    for result in evaluation["directions"].values():
        assert result["teacher"] == f"{teacher.name} {teacher.manifest.version}"
        assert result["psnr_vs_teacher_db"] >= 25.0  # issue 13, section 1
    image = image_to_tensor(load_image(real_images("testA", 1)[0]))[None].numpy()
    out = create_backend("onnxruntime", student, "horse2zebra-fast", device="cpu").translate(image)
    assert out.shape == image.shape and np.abs(out - image).mean() > 0.02
