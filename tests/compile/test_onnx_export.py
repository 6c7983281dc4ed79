"""`python -m compile onnx` on real (small and ResNet-9) generators, checked in ONNX Runtime."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import compile.onnx_export as onnx_export
from compile.__main__ import main
from cyclegan.backends import tensorrt_available
from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend
from cyclegan.generator import GeneratorConfig, build_generator
from cyclegan.package import PackageError, load_package
from tests.builders import SMALL, make_package

RESNET9 = GeneratorConfig(ngf=64, n_blocks=9)
# the fast student's kind: pixel (un)shuffle at the ends, mobile blocks
SHUFFLE = GeneratorConfig(arch="mobile", ngf=8, n_blocks=2, upsample="resize", ends="shuffle")


@pytest.fixture
def small_package(tmp_path: Path) -> Path:
    return make_package(tmp_path / "pkg", SMALL)


@pytest.mark.parametrize(
    "config", [SMALL, RESNET9, SHUFFLE], ids=["small", "resnet9", "shuffle-ends"]
)
def test_export_matches_pytorch_at_several_shapes(tmp_path: Path, config: GeneratorConfig) -> None:
    package_dir = make_package(tmp_path / "pkg", config)
    assert main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)  # hashes of the new files are checked here
    for name in ("horse2zebra", "zebra2horse"):
        info = package.direction(name).onnx
        assert info is not None and info.opset == onnx_export.OPSET
        assert info.max_abs_error <= 1e-4
        model = onnx.load(package_dir / info.file)
        dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
        backend = OnnxRuntimeBackend(package_dir / info.file)
        net = package.load_generator(name)
        for shape in [(2, 3, 32, 56), (1, 3, 72, 40)]:  # shapes the export never saw
            x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
            with torch.no_grad():
                expected = net(torch.from_numpy(x)).numpy()
            assert np.abs(backend.translate(x) - expected).max() <= 1e-4


def test_fp16_graph_keeps_fp32_io_and_is_close(small_package: Path) -> None:
    assert main(["onnx", "--package", str(small_package)]) == 0
    info = load_package(small_package).direction("horse2zebra").onnx
    assert info is not None and info.fp16 is not None and info.fp16_psnr_db is not None
    assert info.fp16_psnr_db >= 35
    model = onnx.load(small_package / info.fp16.file)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert OnnxRuntimeBackend(small_package / info.fp16.file).precision == "fp16"


def test_export_fails_loudly_outside_tolerance(small_package: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", 0.0)  # no real export is exact
    assert main(["onnx", "--package", str(small_package)]) == 2
    assert "differs from PyTorch by" in caplog.text
    assert load_package(small_package).direction("horse2zebra").onnx is None


def test_corrupted_onnx_file_is_refused(small_package: Path) -> None:
    assert main(["onnx", "--package", str(small_package)]) == 0
    path = small_package / "onnx" / "horse2zebra.onnx"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError, match="sha256 is"):
        load_package(small_package)
    with pytest.raises(ValueError, match="ONNX Runtime cannot load this graph"):
        OnnxRuntimeBackend(path)


def test_onnx_with_the_wrong_inputs_is_refused(tmp_path: Path) -> None:
    net = build_generator(SMALL).eval()
    path = tmp_path / "other.onnx"
    torch.onnx.export(
        net, torch.zeros(1, 3, 32, 32), path, input_names=["x"], output_names=["y"], dynamo=False
    )
    with pytest.raises(ValueError, match="expected one input 'image'"):
        OnnxRuntimeBackend(path)


def test_mismatched_onnx_fails_verify(small_package: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """An ONNX graph of another generator, with its hash updated: verify catches it."""
    assert main(["onnx", "--package", str(small_package)]) == 0
    other = make_package(tmp_path / "other", SMALL, seed=99)
    assert main(["onnx", "--package", str(other)]) == 0
    manifest = json.loads((small_package / "model.json").read_text())
    other_manifest = json.loads((other / "model.json").read_text())
    for file in ("horse2zebra.onnx", "horse2zebra.fp16.onnx"):
        (small_package / "onnx" / file).write_bytes((other / "onnx" / file).read_bytes())
    manifest["directions"]["horse2zebra"]["onnx"] = other_manifest["directions"]["horse2zebra"][
        "onnx"
    ]
    (small_package / "model.json").write_text(json.dumps(manifest))
    assert (
        main(["verify", "--package", str(small_package), "--resolution", "32", "--repeats", "1"])
        == 1
    )
    table = capsys.readouterr().out
    assert "| horse2zebra | 32x32 | onnxruntime | cpu | fp32 |" in table and "FAIL" in table
    assert "| zebra2horse | 32x32 | onnxruntime | cpu | fp32 |" in table


def test_verify_passes_on_a_good_package(small_package: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["onnx", "--package", str(small_package)]) == 0
    assert (
        main(
            [
                "verify",
                "--package",
                str(small_package),
                "--resolution",
                "32",
                "--batches",
                "1",
                "2",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert table.count("| ok (reference) |") == 2
    assert "img/s b2" in table and "FAIL" not in table
    # a TensorRT row on every host: skipped, saying why, where TensorRT or a plan is missing
    assert table.count("| tensorrt |") == 2
    if not tensorrt_available():
        assert table.count("skipped: TensorRT is not installed") == 2


def test_missing_package_is_a_clear_error(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    assert main(["onnx", "--package", str(tmp_path / "nope")]) == 2
    assert "not a directory" in caplog.text
