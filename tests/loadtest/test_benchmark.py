"""`python -m loadtest.benchmark --quick`: the service over HTTP, against the runtime figures."""

import subprocess
import sys
from pathlib import Path

import pytest

from compile.__main__ import main as compile_main
from loadtest.benchmark import main
from loadtest.server import ROOT
from tests.builders import tiny_pairs


def test_the_service_benchmark_is_an_http_client_only() -> None:
    """No runtime, no torch and no other stage: loadtest measures the service from outside.

    Of the shared package it uses only the standard-library BENCHMARKS.md writer."""
    code = (
        "import sys, loadtest.benchmark; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'compile', "
        "'cyclegan', 'training', 'serving', 'onnxruntime'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "['cyclegan', 'cyclegan.benchmarks_file']"


@pytest.mark.slow
def test_quick_benchmark_runs_every_section(tmp_path: Path) -> None:
    model_dir = tiny_pairs(
        tmp_path / "models"
    )  # two pairs and their students, as make serve serves
    out, figures = tmp_path / "BENCHMARKS.md", tmp_path / "runtimes.json"
    package = str(model_dir / "horse2zebra")
    argv = ["benchmark", "--package", package, "--quick", "--out", str(out)]
    assert compile_main([*argv, "--figures", str(figures)]) == 0
    argv = ["--quick", "--models", str(model_dir), "--out", str(out)]
    assert main([*argv, "--runtime-figures", str(figures)]) == 0
    text = out.read_text()
    for heading in (
        "## 1. Runtimes",
        "## 2. Service overhead",
        "## 3. Batching",
        "## 4. Latency",
        "## 6. Against the reference loop",
    ):
        assert text.count(heading) == 1
    assert "| 4 | on |" in text and "| 4 | off |" in text
    batching = text.split("## 3. Batching")[1].split("## 4.")[0]
    rows = [
        line for line in batching.splitlines() if line.startswith("| ") and "clients" not in line
    ]
    assert rows and all(line.endswith("| 0 |") for line in rows)  # no failed requests
    overhead = text.split("## 2.")[1].split("## 3.")[0]
    assert "raw runtime img/s" in overhead and "nan" not in overhead  # the ratio was measured
    assert "| in the front's process (the default) |" in overhead
    assert "| worker processes (CYCLEGAN_GENERATOR=worker) |" in overhead  # the hop's cost
    turn = next(line for line in overhead.splitlines() if line.startswith("| 1 |"))
    raw, service = (float(cell) for cell in turn.split("|")[2:4])  # timed in turns
    assert raw > 0 and service > 0 and "Median ratio" in overhead
    assert "![throughput and p95 latency against clients](benchmarks-clients.png)" in batching
    assert (tmp_path / "benchmarks-clients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "4 clients spread round robin over 4 directions" in batching
    mixed = batching.split("**Mixed directions.**")[1]
    assert "0 failed" in mixed and "nan" not in mixed
    person = text.split("## 4.")[1].split("## 6.")[0]
    for direction in ("horse2zebra", "zebra2horse-fast", "summer2winter", "winter2summer-fast"):
        assert f"- {direction}: p50 " in person
        row = next(line for line in person.splitlines() if line.startswith(f"| {direction} |"))
        assert "nan" not in row and len(row.split("|")) == 12  # every phase was in the header
    # the page's preview: the model and its student asked for JPEG, and their p50 ratio judged
    assert "| horse2zebra-fast, JPEG answer |" in person
    assert "- horse2zebra-fast, JPEG answer p50 / horse2zebra, JPEG answer p50: " in person
    assert "the target (<= 0.45)" in person and "(target <= 15)" in person
    versus = text.split("## 6.")[1]
    assert "| reference loop img/s | service img/s |" in versus and "nan" not in versus
    assert "| as shipped: onnxruntime cpu fp32 |" in versus  # no INT8 graph: one row
    assert "8 images of horse2zebra/testA" in versus  # the fixtures, in --quick
