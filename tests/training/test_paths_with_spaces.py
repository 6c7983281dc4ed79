"""Paths with spaces (the summer2winter_yosemite file names are dates: `2010-09-07 12_23_20.jpg`)
through every tool that takes them: train, evaluate, example, quantize's calibration."""

from __future__ import annotations

import json
from pathlib import Path

from compile.__main__ import main as compile_main
from cyclegan.package import load_package
from tests.builders import TINY_FLAGS
from training.__main__ import main


def test_train_evaluate_and_compile_on_folders_and_files_with_spaces(
    seasons_data: Path, tmp_path: Path
) -> None:
    assert " " in seasons_data.name and all(" " in p.name for p in seasons_data.glob("*/*.jpg"))
    run = tmp_path / "a run"
    code = main([
        "train", "--data", str(seasons_data), "--out", str(run), *TINY_FLAGS,
        "--domains", "summer", "winter", "--max-steps", "3", "--sample-every", "3",
        "--val-fraction", "0.25", "--val-every", "3",
    ])  # fmt: skip
    assert code == 0
    package = load_package(run / "package")
    assert set(package.manifest.directions) == {"summer2winter", "winter2summer"}
    assert (run / "validation.jsonl").is_file()

    report = tmp_path / "the report" / "eval.json"
    code = main([
        "evaluate", "--package", str(run / "package"), "--data", str(seasons_data),
        "--out", str(report), "--classifier-cache", str(tmp_path / "a cache"),
        "--classifier-seeds", "1", "--judge", "none",
    ])  # fmt: skip
    assert code == 0
    directions = json.loads(report.read_text())["directions"]
    assert {name: d["source_images"] for name, d in directions.items()} == {
        "summer2winter": 4, "winter2summer": 4,
    }  # fmt: skip

    example = seasons_data / "testA" / "2010-09-07 12_23_20.jpg"
    assert main(["example", "--package", str(run / "package"), "--image", f"summer={example}"]) == 0
    stored = load_package(run / "package").manifest.directions["summer2winter"].example
    assert stored is not None and stored.image == example.name

    assert compile_main(["onnx", "--package", str(run / "package")]) == 0
    code = compile_main([
        "quantize", "--package", str(run / "package"), "--calibration", str(seasons_data),
        "--samples", "2",
    ])  # fmt: skip
    assert code == 0
    int8 = load_package(run / "package").manifest.directions["summer2winter"].onnx
    assert int8 is not None and int8.int8 is not None and int8.int8.calibration_images == 2
