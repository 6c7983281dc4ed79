"""The prepared GPU session (training/tools/gpu_session.sh) and its data bundle, run on the CPU.

No GPU is at hand in CI: the script runs with tiny networks on a few real images, which checks
everything but CUDA itself (its gpu tests and benchmark are switched off with CHECKS=0).
"""

import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from cyclegan.package import load_package
from tests.builders import ROOT, TINY_FLAGS
from training.__main__ import main as training_main
from training.tools.gpu_bundle import BundleError, pack


def test_bundle_packs_train_folders_as_webp_and_skips_junk(tiny_data: Path, tmp_path: Path) -> None:
    (tiny_data / "trainA" / "notes.txt").write_text("not an image")
    out = tmp_path / "bundle" / "data"
    counts = pack(tiny_data, out, quality=70, budget_bytes=2**20)
    assert counts == {"trainA": 6, "trainB": 5}
    assert sorted(p.name for p in out.iterdir()) == ["trainA", "trainB"]  # no test folders
    assert out.stat().st_mode & 0o777 == 0o755
    for file in (out / "trainB").iterdir():
        with Image.open(file) as image:
            assert image.format == "WEBP" and image.mode == "RGB"
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    original = sum(
        f.stat().st_size for s in ("trainA", "trainB") for f in (tiny_data / s).iterdir()
    )
    assert size < original / 2


def test_bundle_keeps_names_with_spaces(seasons_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "a bundle" / "data"
    assert pack(seasons_data, out, quality=70, budget_bytes=2**20) == {"trainA": 4, "trainB": 4}
    names = sorted(p.stem for p in (out / "trainA").iterdir())
    assert names == sorted(p.stem for p in (seasons_data / "trainA").iterdir())
    assert all(" " in name for name in names)


def test_bundle_over_budget_writes_nothing(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle" / "data"
    try:
        pack(tiny_data, out, quality=70, budget_bytes=20_000)
    except BundleError as error:
        assert "over the budget" in str(error)
    else:
        raise AssertionError("a bundle over its budget was written")
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no staging folder left behind


def test_session_script_trains_grown_from_a_package_and_brings_it_back(
    tiny_data: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    base = ["train", "--data", str(tiny_data), "--out", str(source), *TINY_FLAGS]
    base += ["--domains", "horse", "zebra"]
    assert training_main([*base, "--max-steps", "2"]) == 0
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "DATA": str(tiny_data),
        "INIT_FROM": str(source / "package"),
        "TRAIN_FLAGS": " ".join([*TINY_FLAGS, "--max-steps", "3"]),
        "CHECKS": "0",
        "MINUTES": "5",
        "BUNDLE": str(tmp_path / "no-bundle"),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        ["bash", "training/tools/gpu_session.sh"], cwd=ROOT, env=env, capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    package = load_package(out / "package")
    training = package.manifest.training
    assert training["steps"] == 3
    assert training["init_from"]["steps"] == 2  # grown from the source package
    assert training["config"]["image_size"] == 32  # the flags override the GPU config ...
    assert training["config"]["load_size"] == 36
    assert training["config"]["upsample"] == "resize"  # ... which still sets the rest
    weights = package.load_generator("horse2zebra")
    assert weights(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    stored = (out / "package" / "generator_ab.safetensors").read_bytes()
    assert b"F16" in stored[:4096]  # fp16 weights: half the bytes to bring back
    assert (out / "train.log").stat().st_size > 0
    assert (out / "package" / "metrics.jsonl").is_file()


def test_session_script_needs_out() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run(
        ["bash", "training/tools/gpu_session.sh"], cwd=ROOT, env=env, capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "set OUT" in done.stderr
