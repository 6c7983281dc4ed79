"""`python -m compile benchmark --quick`: every backend timed in-process, its section written."""

import json
from pathlib import Path

from compile.__main__ import main
from compile.benchmark import HEADING
from cyclegan.benchmarks_file import write_section
from tests.builders import FIXTURES, SMALL, make_package


def test_quick_benchmark_writes_its_section_and_figures(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", SMALL)
    out, figures = tmp_path / "BENCHMARKS.md", tmp_path / "runtimes.json"
    out.write_text("# Benchmarks\n\n## 1. Runtimes (256x256)\n\nold\n\n## 2. Other\n\nkept\n")
    argv = ["benchmark", "--package", str(package), "--quick", "--out", str(out)]
    argv += ["--calibration", str(FIXTURES)]
    assert main([*argv, "--figures", str(figures)]) == 0
    text = out.read_text()
    assert "\nold\n" not in text and "## 2. Other\n\nkept\n" in text
    section = text.split("## 1. Runtimes (64x64)")[1].split("## 2.")[0]
    for row in ("| default | ", "| resnet9 | "):
        assert row + "0." in section  # GMAC per image, then the backends
    assert "| onnxruntime cpu fp32 | " in section and "| torch cpu fp32 | " in section
    assert "| default | 0.02 | onnxruntime cpu int8 | " in section  # quantized on the fixtures
    assert "- default: INT8 / fp32 images/s in ONNX Runtime on the CPU: " in section
    assert "batch 1" in section and "nan" not in section
    written = json.loads(figures.read_text())
    assert (written["model"], written["version"], written["size"]) == ("h2z", "1", 64)
    assert set(written["images_per_second"]["onnxruntime cpu fp32"]) == {"1", "2"}
    assert not (package / "onnx").exists()  # the benchmark compiled a private copy


def test_write_section_appends_a_missing_section(tmp_path: Path) -> None:
    out = tmp_path / "B.md"
    write_section(out, HEADING, [f"{HEADING} (8x8)", "", "figures"])
    write_section(out, "## 4. Latency", ["## 4. Latency", "", "more"])
    write_section(out, HEADING, [f"{HEADING} (8x8)", "", "new figures"])
    assert out.read_text() == (
        "# Benchmarks\n\n## 1. Runtimes (8x8)\n\nnew figures\n\n## 4. Latency\n\nmore\n"
    )
