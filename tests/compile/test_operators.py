"""`python -m compile operators`: one image's time by operator type, from ORT's profiler."""

from pathlib import Path

import pytest

from compile.__main__ import main
from compile.operators import kernel_times
from cyclegan.generator import GeneratorConfig
from tests.builders import make_package

SHUFFLE = GeneratorConfig(arch="mobile", ngf=8, n_blocks=2, upsample="resize", ends="shuffle")


def test_operators_table_names_each_direction_and_its_operators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = make_package(tmp_path / "pkg", SHUFFLE)
    assert main(["onnx", "--package", str(package)]) == 0
    capsys.readouterr()
    argv = ["operators", "--package", str(package), "--resolution", "64", "--runs", "3"]
    assert main([*argv, "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| direction | graph | GMAC | ms per image |")
    by_direction = {row.split(" | ")[0].strip("| "): row for row in rows[1:]}
    assert set(by_direction) == {"horse2zebra", "zebra2horse"}
    for row in by_direction.values():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "fp32" and float(cells[3]) > 0
        assert "Conv " in cells[4]  # the convolutions are always among the largest


def test_kernel_times_add_up_node_events_by_operator() -> None:
    events = [
        {"cat": "Node", "name": "conv1_kernel_time", "dur": 3000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "conv2_kernel_time", "dur": 1000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "conv1_kernel_time", "dur": 2000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "pad_kernel_time", "dur": 500, "args": {"op_name": "Pad"}},
        {"cat": "Node", "name": "pad_fence_before", "dur": 9000, "args": {"op_name": "Pad"}},
        {"cat": "Session", "name": "model_run", "dur": 99000},
    ]
    ms, nodes = kernel_times(events, runs=2)
    assert ms == {"Conv": 3.0, "Pad": 0.25}
    assert nodes == {"Conv": 2, "Pad": 1}


def test_operators_refuses_a_package_without_graphs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    package = make_package(tmp_path / "pkg", SHUFFLE)
    assert main(["operators", "--package", str(package)]) == 2
    assert "run python -m compile onnx first" in caplog.text
