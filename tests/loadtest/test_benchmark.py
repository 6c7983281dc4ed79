from pathlib import Path

import pytest

from loadtest.benchmark import main


@pytest.mark.slow
def test_quick_benchmark_runs_every_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    assert main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    for heading in (
        "## 1. Runtimes",
        "## 2. Service overhead",
        "## 3. Batching",
        "## 4. Latency",
        "## 5. GPU",
    ):
        assert heading in text
    assert "| default | " in text and "| resnet9 | " in text
    assert "| 4 | on |" in text and "| 4 | off |" in text
    batching = text.split("## 3. Batching")[1].split("## 4.")[0]
    rows = [
        line for line in batching.splitlines() if line.startswith("| ") and "clients" not in line
    ]
    assert rows and all(line.endswith("| 0 |") for line in rows)  # no failed requests
    assert "nan" not in text.split("## 2.")[1].split("## 3.")[0]  # the overhead ratio was measured
