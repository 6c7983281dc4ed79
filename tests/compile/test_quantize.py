"""`python -m compile quantize`: a static INT8 graph beside the fp32 one, behind a PSNR gate."""

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx.numpy_helper import to_array
from PIL import Image

import compile.quantize as quantize
from compile.__main__ import main
from cyclegan.backends import create_backend
from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend
from cyclegan.cpu_features import X86, x86_without_vnni
from cyclegan.generator import GeneratorConfig
from cyclegan.imaging import image_to_array, psnr_db
from cyclegan.package import PackageError, load_package
from tests.builders import FIXTURES, SMALL, make_package, real_images, tiny_pair


def quantize_on_fixtures(package: Path, *flags: str) -> int:
    """`compile quantize` calibrated on the fixture images, with the PSNR gate on theirs."""
    return main(["quantize", "--package", str(package), "--calibration", str(FIXTURES), *flags])


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    package = make_package(tmp_path / "pkg", SMALL)
    assert main(["onnx", "--package", str(package)]) == 0
    return package


def test_quantize_writes_an_int8_graph_that_passed_its_gate(compiled: Path) -> None:
    assert quantize_on_fixtures(compiled, "--samples", "4") == 0
    package = load_package(compiled)  # hashes of the INT8 graphs are checked here
    for name, side in (("horse2zebra", "A"), ("zebra2horse", "B")):
        exported = package.direction(name).onnx
        assert exported is not None and exported.int8 is not None
        int8 = exported.int8
        assert int8.file == f"onnx/{name}.int8.onnx" and (compiled / int8.file).is_file()
        assert int8.psnr_db >= int8.min_psnr_db == 30.0
        assert int8.source_sha256 == exported.sha256
        assert (int8.calibration_data, int8.calibration_images) == (f"horse2zebra/train{side}", 4)
        assert int8.test_images == 8  # every fixture test image of the source domain
        graph = onnx.load(compiled / int8.file)
        weights = [to_array(t) for t in graph.graph.initializer if t.data_type == TensorProto.INT8]
        assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64
        assert int8.weight_bits == quantize.weight_bits(compiled / int8.file) == 7
    # the ONNX Runtime backend runs it on request, and by itself on the CPU
    fast = create_backend("onnxruntime", package, "horse2zebra", "cpu", precision="int8")
    fp32 = create_backend("onnxruntime", package, "horse2zebra", "cpu", precision="fp32")
    assert (fast.precision, fp32.precision) == ("int8", "fp32")
    assert create_backend("auto", package, "horse2zebra", "cpu").precision == "int8"
    with Image.open(real_images("testA", 1)[0]) as image:
        x = image_to_array(image.convert("RGB").resize((64, 64)))[None]
    assert psnr_db(fp32.translate(x), fast.translate(x)) >= 30


def test_a_graph_below_the_gate_is_refused_and_nothing_is_written(
    compiled: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = (compiled / "model.json").read_bytes()
    before = sorted(p.name for p in (compiled / "onnx").iterdir())
    monkeypatch.setattr(quantize, "MIN_PSNR_DB", 99.0)
    assert quantize_on_fixtures(compiled, "--samples", "2") == 2
    assert "below the 99 dB gate; nothing was written" in caplog.text
    assert "dB PSNR against fp32 on 8 test images" in caplog.text  # the measured figure
    assert (compiled / "model.json").read_bytes() == manifest
    assert sorted(p.name for p in (compiled / "onnx").iterdir()) == before  # no graph, no staging


def test_quantize_needs_an_onnx_graph_and_real_images(
    tmp_path: Path, compiled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bare = make_package(tmp_path / "bare", SMALL)
    assert main(["quantize", "--package", str(bare)]) == 2
    assert "run python -m compile onnx" in caplog.text
    assert main(["quantize", "--package", str(compiled), "--calibration", str(tmp_path)]) == 2
    assert "trainA: no such folder" in caplog.text


def test_without_a_data_set_it_calibrates_on_the_package_examples(tmp_path: Path) -> None:
    package = tiny_pair(tmp_path / "h2z", ("horse", "zebra"))
    assert main(["quantize", "--package", str(package)]) == 0
    loaded = load_package(package)
    for name in ("horse2zebra", "zebra2horse"):
        exported = loaded.direction(name).onnx
        assert exported is not None and exported.int8 is not None
        int8, photo = exported.int8, f"examples/{name}.input.jpg"
        assert (int8.calibration_data, int8.calibration_images, int8.test_images) == (photo, 1, 1)
        assert int8.calibration_sha256 == hashlib.sha256((package / photo).read_bytes()).hexdigest()
        assert int8.psnr_db >= 30.0


def test_without_a_data_set_or_examples_it_says_what_to_pass(
    compiled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = (compiled / "model.json").read_bytes()
    assert main(["quantize", "--package", str(compiled)]) == 2
    assert "horse2zebra has no example photo to calibrate on: pass --calibration DIR" in caplog.text
    assert (compiled / "model.json").read_bytes() == manifest
    assert not [p for p in (compiled / "onnx").iterdir() if ".int8" in p.name]


def test_int8_records_are_checked_on_load(compiled: Path) -> None:
    assert quantize_on_fixtures(compiled, "--samples", "2") == 0
    path = compiled / "model.json"
    good = json.loads(path.read_text())

    def load_with(change: dict[str, object]) -> None:
        manifest = json.loads(json.dumps(good))
        manifest["directions"]["horse2zebra"]["onnx"]["int8"].update(change)
        path.write_text(json.dumps(manifest))
        load_package(compiled)

    with pytest.raises(PackageError, match="below its gate"):
        load_with({"psnr_db": 29.0})
    with pytest.raises(PackageError, match="quantized from another fp32 graph"):
        load_with({"source_sha256": "0" * 64})
    path.write_text(json.dumps(good))
    graph = compiled / "onnx" / "horse2zebra.int8.onnx"
    graph.write_bytes(graph.read_bytes() + b"x")
    with pytest.raises(PackageError, match="sha256"):
        load_package(compiled)


@pytest.mark.skipif(platform.machine().lower() not in X86, reason="saturation is an x86 matter")
def test_an_older_8_bit_graph_is_not_served_by_auto_on_a_cpu_without_vnni(
    compiled: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Graphs with 8-bit weights saturate on CPUs without VNNI, so auto serves fp32 there."""
    avx2, vnni = tmp_path / "avx2", tmp_path / "vnni"
    avx2.write_text("processor : 0\nflags : fpu sse avx2 fma\n")
    vnni.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_vnni\n")
    assert x86_without_vnni(avx2) and not x86_without_vnni(vnni)
    assert not x86_without_vnni(tmp_path / "absent")  # unknown: the recorded gate stands
    assert quantize_on_fixtures(compiled, "--samples", "2") == 0

    def precision(cpuinfo: Path, asked: str = "auto") -> str:
        package = load_package(compiled)
        backend = OnnxRuntimeBackend.from_package(
            package, "horse2zebra", use_cuda=False, precision=asked, cpuinfo=cpuinfo
        )  # type: ignore[arg-type]
        return backend.precision

    assert precision(avx2) == "int8"  # 7-bit weights: the same figures on every CPU
    assert "8-bit weights" not in caplog.text
    path = compiled / "model.json"
    manifest = json.loads(path.read_text())
    del manifest["directions"]["horse2zebra"]["onnx"]["int8"]["weight_bits"]  # reads as 8 bits
    path.write_text(json.dumps(manifest))
    assert precision(vnni) == "int8"
    assert precision(avx2) == "fp32"
    assert (
        "8-bit weights, which lose accuracy on this CPU (no VNNI); serving the fp32" in caplog.text
    )
    caplog.clear()
    assert precision(avx2, "int8") == "int8"  # asked for by name: served, with a warning
    assert "int8 asked for" in caplog.text and "rerun python -m compile quantize" in caplog.text
    argv = ["verify", "--package", str(compiled), "--batches", "1", "--repeats", "1"]
    assert main(argv) == 0  # the graph still passes its PSNR gate


def test_a_new_onnx_export_drops_the_stale_int8_graph(compiled: Path) -> None:
    assert quantize_on_fixtures(compiled, "--samples", "2") == 0
    assert main(["onnx", "--package", str(compiled)]) == 0
    onnx = load_package(compiled).direction("horse2zebra").onnx
    assert onnx is not None and onnx.int8 is None
    assert not (compiled / "onnx" / "horse2zebra.int8.onnx").exists()


def test_verify_has_an_int8_row(compiled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert quantize_on_fixtures(compiled, "--samples", "2") == 0
    argv = ["verify", "--package", str(compiled), "--batches", "1", "--repeats", "1"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| horse2zebra | 64x64 | onnxruntime | cpu | int8 |" in table
    assert "ok (PSNR >= 30 dB)" in table


def test_the_upsampling_path_stays_fp32(tmp_path: Path) -> None:
    """A resize-convolution generator: the convolutions after each Resize are not quantized."""
    config = GeneratorConfig(ngf=8, n_blocks=1, upsample="resize")
    package = make_package(tmp_path / "pkg", config)
    assert main(["onnx", "--package", str(package)]) == 0
    model = onnx.load(package / "onnx" / "horse2zebra.onnx")
    excluded = quantize.upsampling_convs(model)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert len(excluded) == 2 and set(excluded) < set(convs)  # two upsampling steps
    assert quantize_on_fixtures(package, "--samples", "2") == 0
    int8 = onnx.load(package / "onnx" / "horse2zebra.int8.onnx")
    quantized = {n.output[0] for n in int8.graph.node if n.op_type == "DequantizeLinear"}
    for node in int8.graph.node:
        if node.op_type == "Conv":
            assert (node.name in excluded) != (node.input[1] in quantized)  # weight dequantized
