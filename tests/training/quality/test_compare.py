"""`python -m training compare`: evaluation reports side by side."""

import json
from pathlib import Path

import pytest

from training.__main__ import main


def write_report(
    path: Path, version: str, domain: float, classifier: str = "clf-1", correct: int = 47
) -> Path:
    figures = {
        "domain_score": domain, "cycle_psnr_db": 19.5, "cycle_ssim": 0.61,
        "classifier_fid": 42.0, "judgement": {"verdict": "weak", "failed": []},
    }  # fmt: skip
    report = {
        "package": "horse2zebra", "version": version,
        "classifier": {"file": classifier, "test_accuracy": correct / 50, "test_correct": correct,
                       "test_images": 50},
        "directions": {"horse2zebra": figures, "zebra2horse": {**figures, "domain_score": 0.1}},
    }  # fmt: skip
    path.write_text(json.dumps(report))
    return path


def test_compare_prints_each_direction_with_every_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_report(tmp_path / "first.json", "1+step10", 0.5)
    second = write_report(tmp_path / "b.json", "1+step20", 0.75)
    out = tmp_path / "table.md"
    assert main(["compare", str(first), f"grown={second}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    rows = [line for line in printed.splitlines() if line.startswith("| horse2zebra")]
    assert rows == [
        "| horse2zebra | first | 1+step10 | 0.500 | 19.50 | 0.610 | 42.0 | weak |",
        "| horse2zebra | grown | 1+step20 | 0.750 | 19.50 | 0.610 | 42.0 | weak |",
    ]
    assert printed.count("| zebra2horse |") == 2
    assert "47/50 (0.940)" in printed


def test_compare_refuses_reports_of_different_classifiers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = write_report(tmp_path / "a.json", "1", 0.5, classifier="clf-1")
    second = write_report(tmp_path / "b.json", "2", 0.5, classifier="clf-2")
    assert main(["compare", str(first), str(second)]) == 2
    assert "different domain classifiers (clf-1 (47/50 right), clf-2 (47/50 right))" in caplog.text
    # one cache name, other weights (trained on another CPU): refused too
    retrained = write_report(tmp_path / "c.json", "3", 0.5, classifier="clf-1", correct=48)
    assert main(["compare", str(first), str(retrained)]) == 2
    assert "clf-1 (48/50 right)" in caplog.text


def test_compare_refuses_what_is_not_a_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2")
    assert main(["compare", str(junk)]) == 2
    assert "not a readable report" in caplog.text
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert main(["compare", str(other)]) == 2
    assert "not a report of python -m training evaluate" in caplog.text


def test_compare_shows_the_judge_columns_and_the_seed_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_report(tmp_path / "old.json", "1", 0.5)  # a report without the judge's figures
    new_path = write_report(tmp_path / "new.json", "2", 0.8)
    report = json.loads(new_path.read_text())
    report["directions"]["horse2zebra"] |= {
        "fd_lite1": 812.25, "imagenet_target_share": 0.55,
        "domain_score_per_seed": [0.8, 0.7, 0.9], "domain_score_mean": 0.8,
        "domain_score_std": 0.0816,
    }  # fmt: skip
    report["directions"]["zebra2horse"] |= {"fd_lite1": 700.0, "imagenet_source_left": 0.1}
    new_path.write_text(json.dumps(report))
    assert main(["compare", f"v2={old}", f"new={new_path}"]) == 0
    printed = capsys.readouterr().out
    assert "| FD-Lite1 | ImageNet: target | ImageNet: source left | verdict |" in printed
    assert (
        "| horse2zebra | new | 2 | 0.800 (0.800 ± 0.082, 3 seeds) | 19.50 | 0.610 | 42.0 | "
        "812.2 | 0.550 | — | weak |"
    ) in printed
    assert "| horse2zebra | v2 | 1 | 0.500 | 19.50 | 0.610 | 42.0 | — | — | — | weak |" in printed
    z2h = "| zebra2horse | new | 2 | 0.100 | 19.50 | 0.610 | 42.0 | 700.0 | — | 0.100 | weak |"
    assert z2h in printed
