"""`python -m loadtest.startup`: seconds to ready and RSS, per pair and for every pair."""

from pathlib import Path

import pytest

from loadtest.startup import main, packages_by_pair
from tests.builders import tiny_pairs


@pytest.mark.slow
def test_startup_is_measured_per_pair_and_together(tmp_path: Path) -> None:
    models = tiny_pairs(tmp_path / "models")
    assert packages_by_pair(models) == {
        "horse ↔ zebra": ["horse2zebra", "horse2zebra-fast"],
        "summer ↔ winter": ["summer2winter", "summer2winter-fast"],
    }
    out = tmp_path / "BENCHMARKS.md"
    assert main(["--models", str(models), "--out", str(out), "--repeats", "1"]) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ")]
    assert [row[1] for row in rows[1:]] == ["4", "4", "8"]  # directions per row
    for row in rows[1:]:
        ready_s, ready_mib, used_mib = (float(cell.strip(" |")) for cell in row[2:])
        assert 0 < ready_s < 600 and 0 < ready_mib <= used_mib * 1.5
    assert main(["--models", str(tmp_path / "empty"), "--out", str(out)]) == 2
