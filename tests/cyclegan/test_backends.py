"""The runtime backends behind one interface, and how `auto` chooses."""

from pathlib import Path

import numpy as np
import pytest
import torch

from compile.__main__ import main as compile_main
from cyclegan.backends import BackendUnavailable, create_backend
from cyclegan.imaging import psnr_db
from cyclegan.package import PackageError, load_package
from tests.builders import SMALL, make_package


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    return make_package(tmp_path / "pkg", SMALL)


def test_auto_on_cpu_uses_pytorch_until_there_is_an_onnx_graph(package_dir: Path) -> None:
    backend = create_backend("auto", load_package(package_dir), "horse2zebra", device="cpu")
    assert (backend.name, backend.device, backend.precision) == ("torch", "cpu", "fp32")
    assert compile_main(["onnx", "--package", str(package_dir)]) == 0
    backend = create_backend("auto", load_package(package_dir), "horse2zebra", device="cpu")
    assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "cpu", "fp32")


def test_backends_agree(package_dir: Path) -> None:
    assert compile_main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 40, 64)).astype(np.float32)
    ort = create_backend("onnxruntime", package, "zebra2horse", device="cpu", threads=1)
    pt = create_backend("torch", package, "zebra2horse", device="cpu")
    assert ort.translate(x).shape == x.shape
    assert np.abs(ort.translate(x) - pt.translate(x)).max() <= 1e-4


def test_clear_errors(package_dir: Path) -> None:
    package = load_package(package_dir)
    with pytest.raises(BackendUnavailable, match="run python -m compile onnx"):
        create_backend("onnxruntime", package, "horse2zebra", device="cpu")
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend("jax", package, "horse2zebra")  # type: ignore[arg-type]
    with pytest.raises(PackageError, match="no direction 'cat2dog'"):
        create_backend("torch", package, "cat2dog")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA device")
def test_asking_for_cuda_without_a_device_is_a_clear_error(package_dir: Path) -> None:
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        create_backend("torch", load_package(package_dir), "horse2zebra", device="cuda")


@pytest.mark.gpu
def test_torch_cuda_fp16_is_close_to_fp32(package_dir: Path) -> None:
    package = load_package(package_dir)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 64, 64)).astype(np.float32)
    fp16 = create_backend("torch", package, "horse2zebra", device="cuda")
    reference = create_backend("torch", package, "horse2zebra", device="cpu").translate(x)
    assert fp16.precision == "fp16"
    assert psnr_db(reference, fp16.translate(x)) >= 35


def test_precision_picks_the_graph_or_says_what_is_missing(package_dir: Path) -> None:
    assert compile_main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)
    pick = {
        p: create_backend("onnxruntime", package, "horse2zebra", "cpu", precision=p).precision
        for p in ("auto", "fp32", "fp16")
    }
    assert pick == {"auto": "fp32", "fp32": "fp32", "fp16": "fp16"}  # auto: no INT8 graph yet
    with pytest.raises(BackendUnavailable, match="run python -m compile quantize"):
        create_backend("onnxruntime", package, "horse2zebra", "cpu", precision="int8")
    with pytest.raises(BackendUnavailable, match="int8 runs only in ONNX Runtime on the CPU"):
        create_backend("torch", package, "horse2zebra", "cpu", precision="int8")
    with pytest.raises(BackendUnavailable, match="not fp16 on cpu"):
        create_backend("torch", package, "horse2zebra", "cpu", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision 'bf16'"):
        create_backend("onnxruntime", package, "horse2zebra", precision="bf16")  # type: ignore[arg-type]


def test_spinning_off_lets_idle_threads_sleep_with_the_same_answers(package_dir: Path) -> None:
    assert compile_main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)
    spinning = create_backend("onnxruntime", package, "horse2zebra", "cpu")
    sleeping = create_backend("onnxruntime", package, "horse2zebra", "cpu", spin=False)
    key = "session.intra_op.allow_spinning"

    def entry(backend: object) -> str:
        options = backend.session.get_session_options()  # type: ignore[attr-defined]
        try:
            return str(options.get_session_config_entry(key))
        except RuntimeError:  # not set: ONNX Runtime's default, spinning
            return "default"

    assert (entry(spinning), entry(sleeping)) == ("default", "0")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(spinning.translate(x), sleeping.translate(x))
