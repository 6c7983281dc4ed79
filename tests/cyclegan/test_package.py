import json
import shutil
from pathlib import Path

import pytest
import torch

from cyclegan.generator import GeneratorConfig, build_generator
from cyclegan.package import PackageError, load_package, write_package

CONFIG = GeneratorConfig(ngf=4, n_blocks=1)


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    nets = {key: (build_generator(CONFIG), CONFIG) for key in ("ab", "ba")}
    write_package(
        tmp_path / "pkg", name="horse2zebra", version="1", domains=("horse", "zebra"),
        generators=nets, native_resolution=64, training={"steps": 3},
    )  # fmt: skip
    return tmp_path / "pkg"


def test_round_trip_gives_the_same_generator(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net_ab, net_ba = build_generator(CONFIG).eval(), build_generator(CONFIG).eval()
    package = write_package(
        tmp_path / "pkg", name="h2z", version="7", domains=("horse", "zebra"),
        generators={"ab": (net_ab, CONFIG), "ba": (net_ba, CONFIG)}, native_resolution=32,
    )  # fmt: skip
    loaded = load_package(package.path)
    assert set(loaded.manifest.directions) == {"horse2zebra", "zebra2horse"}
    assert loaded.direction("horse2zebra").native_resolution == 32
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.load_generator("horse2zebra")(x), net_ab(x))
        assert torch.equal(loaded.load_generator("zebra2horse")(x), net_ba(x))


def test_rewriting_a_package_replaces_it(package_dir: Path) -> None:
    nets = {key: (build_generator(CONFIG), CONFIG) for key in ("ab", "ba")}
    write_package(
        package_dir, name="horse2zebra", version="2", domains=("horse", "zebra"),
        generators=nets, native_resolution=64,
    )  # fmt: skip
    assert load_package(package_dir).manifest.version == "2"
    assert sorted(p.name for p in package_dir.parent.iterdir()) == ["pkg"]  # no leftovers


def edit_manifest(package_dir: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = package_dir / "model.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_unknown_direction_lists_the_valid_ones(package_dir: Path) -> None:
    with pytest.raises(PackageError, match="horse2zebra, zebra2horse"):
        load_package(package_dir).direction("cat2dog")


BAD_PACKAGES = {
    "missing directory": (lambda p: shutil.rmtree(p), "not a directory"),
    "no manifest": (lambda p: (p / "model.json").unlink(), "no model.json"),
    "manifest not json": (lambda p: (p / "model.json").write_text("{oops"), "not valid JSON"),
    "missing field": (lambda p: edit_manifest(p, lambda d: d.pop("name")), "name: Field required"),
    "bad direction name": (
        lambda p: edit_manifest(
            p, lambda d: d["directions"].update(h2z=d["directions"].pop("horse2zebra"))
        ),
        "must be named 'horse2zebra'",
    ),
    "future format": (
        lambda p: edit_manifest(p, lambda d: d.update(format_version=99)),
        "format_version 99",
    ),
    "weights missing": (lambda p: (p / "generator_ab.safetensors").unlink(), "is missing"),
    "weights changed": (
        lambda p: (p / "generator_ba.safetensors").write_bytes(b"x" * 100),
        "sha256 is",
    ),
    "path escapes": (
        lambda p: edit_manifest(
            p, lambda d: d["directions"]["horse2zebra"]["weights"].update(file="../x")
        ),
        "must stay inside the package",
    ),
}


@pytest.mark.parametrize("case", BAD_PACKAGES)
def test_bad_package_says_what_is_wrong(package_dir: Path, case: str) -> None:
    damage, message = BAD_PACKAGES[case]
    damage(package_dir)
    with pytest.raises(PackageError, match=message):
        load_package(package_dir)


def test_weights_that_do_not_fit_the_config(package_dir: Path) -> None:
    # A consistent package (hashes right) whose config disagrees with its weights.
    edit_manifest(package_dir, lambda d: d["directions"]["horse2zebra"]["generator"].update(ngf=8))
    package = load_package(package_dir)
    with pytest.raises(PackageError, match="do not fit the generator config"):
        package.load_generator("horse2zebra")


def test_not_safetensors_with_matching_hash(package_dir: Path) -> None:
    from cyclegan.package import sha256_file

    weights = package_dir / "generator_ab.safetensors"
    weights.write_bytes(b"\xff" * 64)
    edit_manifest(
        package_dir,
        lambda d: d["directions"]["horse2zebra"]["weights"].update(sha256=sha256_file(weights)),
    )
    with pytest.raises(PackageError, match="not a safetensors file"):
        load_package(package_dir)


def test_package_is_readable_by_other_users(package_dir: Path) -> None:
    # Packages are often written by one user (CI, an init container) and served by another.
    assert package_dir.stat().st_mode & 0o005 == 0o005
    for file in package_dir.iterdir():
        assert file.stat().st_mode & 0o004, file.name
