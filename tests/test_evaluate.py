"""The domain classifier and `python -m training evaluate`, end to end on a tiny package."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan.generator import GeneratorConfig, build_generator
from cyclegan.package import load_package, write_package
from training.__main__ import main
from training.classifier import (
    DomainClassifier,
    accuracy,
    data_fingerprint,
    load_or_train_classifier,
)


def stripes_and_blobs(root: Path, per_split: dict[str, int]) -> Path:
    """Two easy synthetic domains: A = smooth blobs, B = black and white stripes."""
    generator = torch.Generator().manual_seed(0)
    for split, count in per_split.items():
        (root / split).mkdir(parents=True)
        for i in range(count):
            if split.endswith("A"):
                colour = (torch.rand(3, generator=generator) * 200 + 30).int().tolist()
                image = Image.new("RGB", (48, 40), tuple(colour))
            else:
                period = 2 + i % 4
                row = torch.arange(48) // period % 2 * 255
                pixels = row[None, :, None].expand(40, 48, 3).to(torch.uint8).numpy()
                image = Image.fromarray(pixels)
            image.save(root / split / f"{i:03d}.png")
    return root


@pytest.fixture
def easy_data(tmp_path: Path) -> Path:
    return stripes_and_blobs(
        tmp_path / "easy", {"trainA": 40, "trainB": 40, "testA": 10, "testB": 10}
    )


def test_classifier_learns_easy_domains_and_is_cached(easy_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    trained = load_or_train_classifier(easy_data, cache)
    assert trained.test_accuracy is not None and trained.test_accuracy >= 0.9
    files = list(cache.iterdir())
    assert len(files) == 1 and data_fingerprint(easy_data) in files[0].name
    cached = load_or_train_classifier(easy_data, cache)  # second call: no training
    assert cached.test_accuracy == trained.test_accuracy
    x = torch.rand(3, 3, 50, 70) * 2 - 1
    labels, features = cached.predict(x)
    assert torch.equal(labels, trained.predict(x)[0]) and features.shape == (3, 128)


def test_classifier_reaches_sane_accuracy_on_real_images(horse2zebra: Path, tmp_path: Path) -> None:
    """A small subset of horse2zebra: clearly better than chance on held-out images."""
    from training.classifier import load_folder, train_classifier
    from training.data import scan_folder

    subset = tmp_path / "h2z"
    for split, count in (("trainA", 120), ("trainB", 120), ("testA", 40), ("testB", 40)):
        (subset / split).mkdir(parents=True)
        for path in sorted((horse2zebra / split).iterdir())[:count]:
            (subset / split / path.name).symlink_to(path)
    net, test_accuracy = train_classifier(subset)
    assert test_accuracy is not None and test_accuracy >= 0.7
    train_a = load_folder(scan_folder(subset / "trainA"), "A")
    assert accuracy(net, train_a, torch.zeros(len(train_a)).long()) >= 0.7


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = GeneratorConfig(ngf=4, n_blocks=1)
    nets = {key: (build_generator(config), config) for key in ("ab", "ba")}
    write_package(
        tmp_path / "pkg", name="blobs2stripes", version="1", domains=("blobs", "stripes"),
        generators=nets, native_resolution=32,
    )  # fmt: skip
    return tmp_path / "pkg"


def test_evaluate_end_to_end(easy_data: Path, tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "report" / "eval.json"
    code = main([
        "evaluate", "--package", str(tiny_package), "--data", str(easy_data), "--out", str(out),
        "--classifier-cache", str(tmp_path / "cache"), "--write-package",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["directions"]) == {"blobs2stripes", "stripes2blobs"}
    for result in report["directions"].values():
        assert result["source_images"] == 10 and result["resolution"] == 32
        assert 0.0 <= result["domain_score"] <= 1.0
        assert result["cycle_psnr_db"] > 0 and -1 <= result["cycle_ssim"] <= 1
        assert result["classifier_fid"] >= 0 and result["diversity_ratio"] > 0
        assert "classifier_fid" in result["baseline"]
    # an untrained generator does not make stripes: the classifier says so
    assert report["directions"]["blobs2stripes"]["domain_score_of_untranslated_inputs"] == 0.0
    with Image.open(out.with_suffix(".png")) as grid:
        assert grid.size == (128 * 8, 128 * 2)  # 4 inputs + 4 outputs, one row per direction
    assert load_package(tiny_package).manifest.evaluation == report


def test_evaluate_bad_inputs_are_clear_errors(
    easy_data: Path, tiny_package: Path, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    cache = ["--classifier-cache", str(tmp_path / "cache")]
    assert (
        main(["evaluate", "--package", str(tmp_path / "nope"), "--data", str(easy_data), *cache])
        == 2
    )
    assert "not a directory" in caplog.text
    no_tests = tmp_path / "no-tests"
    (no_tests / "trainA").mkdir(parents=True)
    assert main(["evaluate", "--package", str(tiny_package), "--data", str(no_tests), *cache]) == 2
    assert "needs testA/ and testB/" in caplog.text
    assert main([
        "evaluate", "--package", str(tiny_package), "--data", str(easy_data), *cache,
        "--inception-weights", str(tmp_path / "missing.pth"),
    ]) == 2  # fmt: skip
    assert "missing.pth" in caplog.text


def test_domain_classifier_shapes() -> None:
    net = DomainClassifier(width=8)
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 2)
    assert net.features(torch.zeros(2, 3, 64, 64)).shape == (2, 32)
