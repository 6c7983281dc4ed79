"""`python -m compile.gpu_benchmark`: the real backend classes, timed and checked.

The CUDA run itself carries the `gpu` marker; the table logic runs everywhere, with CPU
backends standing in for the CUDA ones.
"""

from pathlib import Path

import pytest
import torch

import compile.gpu_benchmark as gpu_benchmark
from compile.__main__ import main as compile_main
from cyclegan.backends import BackendUnavailable, create_backend
from cyclegan.package import load_package
from tests.builders import SMALL, make_package


def test_rows_come_from_backends_and_unavailable_ones_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package_dir = make_package(tmp_path / "pkg", SMALL)
    assert compile_main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)

    def missing() -> None:
        raise BackendUnavailable("TensorRT is not installed")

    monkeypatch.setattr(gpu_benchmark, "SIZE", 32)
    monkeypatch.setattr(gpu_benchmark, "BATCHES", (1, 2))
    monkeypatch.setattr(gpu_benchmark, "SECONDS", 0.05)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(
        gpu_benchmark, "candidates",
        lambda p, d: {
            "onnxruntime cpu fp32": lambda: create_backend("onnxruntime", p, d, "cpu"),
            "tensorrt cuda fp16": missing,
        },
    )  # fmt: skip
    rows = gpu_benchmark.measure(package, "horse2zebra")
    assert [r.backend for r in rows] == [
        "torch cpu fp32 (reference)", "onnxruntime cpu fp32", "tensorrt cuda fp16",
    ]  # fmt: skip
    assert rows[1].psnr_db > 60 and set(rows[1].images_per_second) == {1, 2}
    assert rows[2].skipped == "TensorRT is not installed"
    lines = gpu_benchmark.table(rows)
    assert lines[-1] == "| tensorrt cuda fp16 | skipped: TensorRT is not installed | - | - |"


@pytest.mark.gpu
def test_gpu_benchmark_writes_its_section(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg", SMALL)
    out = tmp_path / "BENCHMARKS.md"
    assert gpu_benchmark.main(["--package", str(package_dir), "--out", str(out)]) == 0
    section = out.read_text().split(gpu_benchmark.HEADING)[1]
    assert "| torch cuda fp16 | " in section
    for line in section.splitlines():
        if line.startswith("| ") and "cuda" in line and "skipped" not in line:
            assert float(line.split(" | ")[1]) >= 35  # PSNR against fp32
    assert not (package_dir / "onnx").exists()  # it worked on a private copy
