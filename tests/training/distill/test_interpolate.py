"""`python -m training interpolate`: weights between two related packages, and what it refuses."""

from pathlib import Path

import pytest
import torch

from cyclegan.package import load_package
from tests.builders import tiny_distill
from training.__main__ import main


def distill(teacher: Path, data: Path, out: Path, *extra: str) -> Path:
    assert main([*tiny_distill(teacher, data), "--out", str(out), *extra]) == 0
    return out / "package"


def weights(package: Path, direction: str) -> dict[str, torch.Tensor]:
    return load_package(package).load_generator(direction).state_dict()


def test_interpolate_mixes_the_weights_of_relatives_and_records_both(
    tiny_data: Path,
    teacher: Path,
    tmp_path: Path,
) -> None:
    parent = distill(teacher, tiny_data, tmp_path / "parent", "--steps", "3")
    child = distill(
        teacher, tiny_data, tmp_path / "child", "--steps", "5", "--lr", "1e-2",
        "--init-from", str(parent),
    )  # fmt: skip
    out = tmp_path / "mix"
    argv = ["interpolate", str(parent), str(child), "--alpha", "0.25", "--out", str(out)]
    assert main(argv) == 0
    mixed = load_package(out)
    assert set(mixed.manifest.directions) == {"a2b-fast", "b2a-fast"}
    for direction in ("a2b-fast", "b2a-fast"):
        a, b, m = weights(parent, direction), weights(child, direction), weights(out, direction)
        assert any(not torch.equal(a[k], b[k]) for k in a)  # the two really differ
        for key, value in m.items():
            torch.testing.assert_close(value, 0.25 * a[key] + 0.75 * b[key])
    training = mixed.manifest.training
    assert training["interpolated_from"]["alpha"] == 0.25
    parents = training["interpolated_from"]["packages"]
    assert [p["version"] for p in parents] == [
        load_package(parent).manifest.version,
        load_package(child).manifest.version,
    ]
    assert parents[1]["init_from"]["version"] == parents[0]["version"]  # the lineage travels
    assert training["distilled_from"] == load_package(child).manifest.training["distilled_from"]
    assert training["commands"][0][:2] == ["python -m training", "interpolate"]
    # the ends are the packages themselves
    assert main([*argv[:3], "--alpha", "1", "--out", str(tmp_path / "one")]) == 0
    for key, value in weights(tmp_path / "one", "a2b-fast").items():
        assert torch.equal(value, weights(parent, "a2b-fast")[key])


def test_interpolate_refuses_strangers_other_shapes_and_a_bad_alpha(
    tiny_data: Path,
    teacher: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = distill(teacher, tiny_data, tmp_path / "first", "--steps", "2")
    # the same name and version as `first` (same day, same steps), other weights
    stranger = distill(teacher, tiny_data, tmp_path / "stranger", "--steps", "2", "--lr", "1e-2")
    wider = distill(teacher, tiny_data, tmp_path / "wider", "--steps", "1", "--ngf", "8")
    out = tmp_path / "mix"

    def refused(a: Path, b: Path, alpha: str, says: str) -> None:
        caplog.clear()
        assert main(["interpolate", str(a), str(b), "--alpha", alpha, "--out", str(out)]) == 2
        assert says in caplog.text
        assert not out.exists()

    assert load_package(stranger).manifest.version == load_package(first).manifest.version
    refused(first, stranger, "0.5", "share no package in their lineage")
    refused(first, wider, "0.5", "ngf=8")
    refused(first, first, "1.5", "must lie in [0, 1]")
    refused(first, tmp_path / "none", "0.5", "not a directory")
    # an existing folder is never replaced, least of all one of the inputs
    before = sorted((p.name, p.stat().st_mtime_ns) for p in first.iterdir())
    caplog.clear()
    assert main(["interpolate", str(first), str(first), "--alpha", "0.5", "--out", str(first)]) == 2
    assert "exists" in caplog.text
    assert sorted((p.name, p.stat().st_mtime_ns) for p in first.iterdir()) == before


def test_a_run_grown_from_a_mix_is_still_related_to_the_mix_parents(
    tiny_data: Path,
    teacher: Path,
    tmp_path: Path,
) -> None:
    parent = distill(teacher, tiny_data, tmp_path / "parent", "--steps", "2")
    child = distill(
        teacher, tiny_data, tmp_path / "child", "--steps", "3", "--init-from", str(parent)
    )
    mix = tmp_path / "mix"
    assert main(["interpolate", str(parent), str(child), "--alpha", "0.5", "--out", str(mix)]) == 0
    grown = distill(teacher, tiny_data, tmp_path / "grown", "--steps", "4", "--init-from", str(mix))
    record = load_package(grown).manifest.training["init_from"]
    assert record["interpolated_from"]["alpha"] == 0.5  # the mix's parents travel with it
    argv = ["interpolate", str(parent), str(grown), "--alpha", "0.3", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
