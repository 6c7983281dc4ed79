"""The TensorRT build configuration and the engine-compatibility check.

Everything up to calling TensorRT is tested here; the real build runs under the `gpu` marker
where TensorRT and CUDA exist (not on the machines this project is built on).
"""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from compile.__main__ import main
from compile.tensorrt_build import build_settings, profile_shapes
from cyclegan.backends import BackendUnavailable, tensorrt_available
from cyclegan.engines import EngineMeta, EngineMismatch, check_compatible, gpu_slug, plan_paths
from cyclegan.imaging import psnr_db
from tests.builders import SMALL, make_package


def test_tensorrt_10_uses_the_fp16_flag_and_11_an_fp16_graph() -> None:
    assert build_settings("10.9.0.34") == build_settings("10.13.3")
    ten = build_settings("10.9.0.34")
    assert (ten.graph, ten.strongly_typed, ten.fp16_flag) == ("fp32", False, True)
    eleven = build_settings("11.1.0")
    assert (eleven.graph, eleven.strongly_typed, eleven.fp16_flag) == ("fp16", True, False)
    with pytest.raises(ValueError, match="too old"):
        build_settings("8.6.1")


def test_profile_shapes() -> None:
    profile = profile_shapes(max_batch=16)
    assert profile.min == (1, 3, 64, 64)
    assert profile.opt == (8, 3, 256, 256)
    assert profile.max == (16, 3, 512, 512)
    assert profile_shapes(4, 4, 32, 128, 128).opt == (4, 3, 128, 128)
    with pytest.raises(ValueError, match="multiple of 4"):
        profile_shapes(8, min_size=30)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        profile_shapes(8, opt_size=1024)
    with pytest.raises(ValueError, match="between 1 and --max-batch"):
        profile_shapes(8, opt_batch=9)


def meta(**overrides: object) -> EngineMeta:
    values: dict[str, object] = dict(
        direction="horse2zebra", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
        tensorrt_version="10.9.0.34", precision="fp16", strongly_typed=False,
        profile=profile_shapes(8).model_dump(), input_name="image", output_name="translated",
        onnx_file="onnx/horse2zebra.onnx", onnx_sha256="0" * 64, plan_sha256="1" * 64,
        built_at="2026-11-27T00:00:00+00:00",
    )  # fmt: skip
    values.update(overrides)
    return EngineMeta.model_validate(values)


def test_plan_layout_is_keyed_by_gpu_and_version(tmp_path: Path) -> None:
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    plan, info = plan_paths(tmp_path, "NVIDIA A10G", "10.9.0.34", "horse2zebra")
    assert plan == tmp_path / "engines" / "nvidia-a10g-trt10.9.0.34" / "horse2zebra.plan"
    assert info.name == "horse2zebra.json"


def test_compatible_plan_passes() -> None:
    check_compatible(meta(), "NVIDIA H100 80GB HBM3", (9, 0), "10.9.0.34")


@pytest.mark.parametrize(
    ("gpu", "capability", "version", "message"),
    [
        (
            "NVIDIA A10G",
            (8, 6),
            "10.9.0.34",
            "built on NVIDIA H100 80GB HBM3 (sm 9.0), this is NVIDIA A10G",
        ),
        (
            "NVIDIA H100 80GB HBM3",
            (9, 0),
            "10.13.0",
            "built with TensorRT 10.9.0.34, this is TensorRT 10.13.0",
        ),
    ],
)
def test_plan_for_another_gpu_or_version_is_refused(
    gpu: str, capability: tuple[int, int], version: str, message: str
) -> None:
    with pytest.raises(EngineMismatch, match=re.escape(message)) as error:
        check_compatible(meta(), gpu, capability, version)
    assert "python -m compile tensorrt --package" in str(error.value)


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_without_tensorrt_the_error_says_how_to_get_it(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    package = make_package(tmp_path / "pkg", SMALL)
    assert main(["onnx", "--package", str(package)]) == 0
    assert main(["tensorrt", "--package", str(package), "--max-batch", "4"]) == 2
    assert "nvcr.io/nvidia/tensorrt" in caplog.text or "no CUDA device" in caplog.text
    from cyclegan.backends.tensorrt_runtime import import_tensorrt

    with pytest.raises(BackendUnavailable):
        import_tensorrt()


def test_bad_profile_flags_are_clear_errors(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    package = make_package(tmp_path / "pkg", SMALL)
    assert main(["tensorrt", "--package", str(package), "--min-size", "30"]) == 2
    assert "multiple of 4" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_available(), reason="needs TensorRT")
def test_real_tensorrt_build_matches_pytorch(tmp_path: Path) -> None:
    from cyclegan.backends.tensorrt_runtime import TensorRTBackend
    from cyclegan.package import load_package

    package_dir = make_package(tmp_path / "pkg", SMALL)
    assert main(["onnx", "--package", str(package_dir)]) == 0
    assert (
        main(
            [
                "tensorrt",
                "--package",
                str(package_dir),
                "--max-batch",
                "4",
                "--opt-size",
                "64",
                "--max-size",
                "128",
            ]
        )
        == 0
    )
    package = load_package(package_dir)
    backend = TensorRTBackend.from_package(package, "horse2zebra")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 64, 96)).astype(np.float32)
    with torch.no_grad():
        expected = package.load_generator("horse2zebra")(torch.from_numpy(x)).numpy()
    assert psnr_db(expected, backend.translate(x)) >= 35
    with pytest.raises(ValueError, match="outside the engine's profile"):
        backend.translate(np.zeros((1, 3, 256, 256), np.float32))  # larger than --max-size


def test_plan_is_current_only_for_the_same_gpu_version_graph_and_profile(tmp_path: Path) -> None:
    import json

    from compile.tensorrt_build import plan_is_current
    from cyclegan.package import load_package, sha256_file

    package_dir = make_package(tmp_path / "pkg", SMALL)
    assert main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)
    gpu, sm, version = "NVIDIA L4", (8, 9), "10.9.0.34"
    profile = profile_shapes(8)
    assert not plan_is_current(package, "horse2zebra", profile, gpu, sm, version)  # none yet
    plan, info_path = plan_paths(package_dir, gpu, version, "horse2zebra")
    plan.parent.mkdir(parents=True)
    plan.write_bytes(b"a serialized plan")
    onnx_info = package.direction("horse2zebra").onnx
    assert onnx_info is not None
    info = meta(
        gpu_name=gpu, compute_capability=sm, tensorrt_version=version, profile=profile.model_dump(),
        onnx_sha256=onnx_info.sha256, plan_sha256=sha256_file(plan),
    )  # fmt: skip
    info_path.write_text(json.dumps(info.model_dump(mode="json")))
    assert plan_is_current(package, "horse2zebra", profile, gpu, sm, version)
    assert not plan_is_current(package, "horse2zebra", profile, gpu, sm, "10.13.0")
    assert not plan_is_current(package, "horse2zebra", profile_shapes(16), gpu, sm, version)
    plan.write_bytes(b"changed")
    assert not plan_is_current(package, "horse2zebra", profile, gpu, sm, version)
