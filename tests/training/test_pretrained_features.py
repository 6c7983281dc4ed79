"""Quality from pretrained features: the frozen ImageNet network, the projected discriminator,
the content loss, the weight average, validation-split selection, the carried discriminators,
and the judge that a colour wash cannot fool."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cyclegan.package import PackageError, load_package
from tests.builders import ROOT, TINY_FLAGS, first_batch, tiny_config, train_cli
from training.adversary import adversary_path
from training.checkpoint import checkpoint_path, load_checkpoint
from training.data import DataError
from training.feature_network import ZEBRA_CLASS, FeatureNetwork
from training.networks import build_state
from training.placement import Placement
from training.quality.evaluate import MAX_IMAGENET_SOURCE_LEFT, judge, judged, load_test_images
from training.quality.metrics import fid
from training.step import train_step
from training.validation import split_validation

FIXTURES = ROOT / "tests" / "fixtures" / "horse2zebra"
CPU = Placement(torch.device("cpu"), None, 0, 1)


@pytest.fixture(scope="module")
def lite1() -> FeatureNetwork:
    return FeatureNetwork("lite1")


@pytest.mark.parametrize("name", ["lite0", "lite1"])
def test_feature_network_loads_from_the_wheel_and_knows_zebras(name: str) -> None:
    net = FeatureNetwork(name)
    zebras = load_test_images(FIXTURES / "testB", 256, None)
    horses = load_test_images(FIXTURES / "testA", 256, None)
    with torch.no_grad():
        zebra_top1 = net.logits(zebras).argmax(1)
        horse_top1 = net.logits(horses).argmax(1)
    assert (zebra_top1 == ZEBRA_CLASS).sum() >= 6, zebra_top1  # of 8 real zebra photos
    assert (horse_top1 == ZEBRA_CLASS).sum() == 0, horse_top1


def test_feature_network_is_frozen_in_eval_mode_with_four_scales() -> None:
    net = FeatureNetwork("lite0")
    net.train()  # a parent's .train() must not switch BatchNorm to batch statistics
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    features = net(torch.zeros(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [(24, 16, 16), (40, 8, 8), (112, 4, 4),
                                                      (320, 2, 2)]  # fmt: skip


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_known_shift() -> None:
    features = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)
    shift = torch.zeros(16)
    shift[0] = 0.5
    # the same covariance: the distance is the squared shift of the mean
    assert fid(features, features + shift) == pytest.approx(0.25, rel=1e-6)
    assert fid(features, features + 2 * shift) == pytest.approx(1.0, rel=1e-6)


def test_fd_lite_of_real_images_grows_with_a_colour_shift(lite1: FeatureNetwork) -> None:
    from training.quality.imagenet_check import judge_outputs

    horses = load_test_images(FIXTURES / "testA", 128, None)
    pooled = judge_outputs(lite1, horses)["pooled"]
    small = judge_outputs(lite1, (horses + 0.1).clamp(-1, 1))["pooled"]
    large = judge_outputs(lite1, (horses + 0.4).clamp(-1, 1))["pooled"]
    assert fid(pooled, pooled) == pytest.approx(0.0, abs=1e-6)
    assert 0 < fid(pooled, small) < fid(pooled, large)


def colour_washed_with_lines(images: torch.Tensor) -> torch.Tensor:
    """What the projected probe made: a pink-sepia cast, and horizontal line artefacts."""
    grey = images.mean(1, keepdim=True)
    washed = grey * 0.6 + torch.tensor([0.35, 0.05, -0.05]).view(1, 3, 1, 1)
    washed[:, :, ::6] = 1.0  # a white line every sixth row, no stripes on the animal
    return washed.clamp(-1, 1)


def test_a_colour_wash_with_line_artefacts_is_not_called_good(lite1: FeatureNetwork) -> None:
    """Even where the small classifier is fooled (domain score 1.0), the verdict is weak."""
    horses = load_test_images(FIXTURES / "testA", 256, None)
    zebras = load_test_images(FIXTURES / "testB", 256, None)

    class Direction:
        source, target = "horse", "zebra"

    result = judged(lite1, colour_washed_with_lines(horses), horses, zebras, Direction)
    fooled_classifier = {
        "domain_score": 1.0, "cycle_psnr_db": 30.0, "classifier_fid": 1.0,
        "diversity_ratio": 1.0, "baseline": {"classifier_fid": 100.0} | result["baseline"],
    }  # fmt: skip
    verdict = judge({**result, **fooled_classifier}, classifier_accuracy=0.99)
    assert verdict["verdict"] == "weak"
    assert any("ImageNet" in reason for reason in verdict["failed"]), verdict
    assert result["imagenet_real_photos"]["imagenet_target_share"] >= 0.75  # the ceiling

    class Back:
        source, target = "zebra", "horse"

    # zebra2horse: real horse photos pass the check, untouched zebras do not
    untouched = judged(lite1, zebras, zebras, horses, Back)
    assert untouched["imagenet_source_left"] > MAX_IMAGENET_SOURCE_LEFT
    assert untouched["imagenet_real_photos"]["imagenet_source_left"] == 0.0


@pytest.mark.parametrize(
    "options",
    [
        {"d_arch": "projected"},
        {"d_arch": "both", "lambda_gan": 0.3},
        {"d_arch": "projected", "lambda_content": 0.5, "lambda_identity": 0.0},
        {"ema": 0.9},
    ],
    ids=["projected", "both", "content", "ema"],
)
def test_each_new_option_trains_a_step(tiny_data: Path, options: dict[str, object]) -> None:
    config = tiny_config(tiny_data, **options)
    state = build_state(config, CPU.device, False, 0)
    parts = state.discriminators.trained_parts()
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in parts.items()}
    frozen = [p.detach().clone() for p in state.discriminators.parameters() if not p.requires_grad]
    losses = train_step(first_batch(config), state, config, CPU)
    assert all(math.isfinite(v) for v in losses.values()), losses
    for name, module in parts.items():
        after = list(module.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before[name], after, strict=True)), name
    still = [p for p in state.discriminators.parameters() if not p.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(frozen, still, strict=True))  # features, mixing
    if config.lambda_content:
        assert losses["loss_G_content"] > 0
    if config.ema:
        average = state.average.generators.generator_ab.state_dict()
        last = state.generators.generator_ab.state_dict()
        assert any(not torch.equal(average[k], last[k]) for k in last)


def test_projected_discriminator_and_average_resume_bit_for_bit(
    tiny_data: Path, tmp_path: Path
) -> None:
    flags = ("--d-arch", "both", "--ema", "0.9", "--lambda-content", "0.5",
             "--checkpoint-every", "100", "--pool-size", "2")  # fmt: skip
    assert train_cli(tiny_data, tmp_path / "whole", "--max-steps", "4", *flags) == 0
    assert train_cli(tiny_data, tmp_path / "split", "--max-steps", "2", *flags) == 0
    assert train_cli(tiny_data, tmp_path / "split", "--resume", "--max-steps", "4") == 0
    whole = load_checkpoint(checkpoint_path(tmp_path / "whole"))
    split = load_checkpoint(checkpoint_path(tmp_path / "split"))
    assert whole["step"] == split["step"] == 4
    nets = ("projected_a", "projected_b", "discriminator_a", "average_ab", "generator_ba")
    for net in nets:
        for key, value in whole[net].items():
            assert torch.equal(split[net][key], value), f"{net}.{key}"
    assert whole["average_updates"] == split["average_updates"] == 4


def test_ema_packages_the_averaged_weights(tiny_data: Path, tmp_path: Path) -> None:
    assert train_cli(tiny_data, tmp_path / "run", "--max-steps", "3", "--ema", "0.9") == 0
    saved = load_checkpoint(checkpoint_path(tmp_path / "run"))
    package = load_package(tmp_path / "run" / "package")
    assert package.manifest.training["weights"] == {"kind": "ema", "step": 3, "ema_decay": 0.9}
    packaged = package.load_generator("a2b").state_dict()
    for key, value in packaged.items():
        torch.testing.assert_close(value, saved["average_ab"][key])
    assert any(not torch.equal(packaged[k], saved["generator_ab"][k]) for k in packaged)


def test_validation_selection_never_reads_the_test_folders(tiny_data: Path, tmp_path: Path) -> None:
    """The run, under an audit hook that records every file opened under testA or testB."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_data), "--out", str(run), *TINY_FLAGS,
            "--max-steps", "4", "--val-fraction", "0.3", "--val-every", "2"]  # fmt: skip
    test_folders = [str(tiny_data / "testA"), str(tiny_data / "testB")]
    script = f"""
import sys
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        opened.append(args[0])
sys.addaudithook(hook)
from training.__main__ import main
assert main({argv!r}) == 0
read = [p for p in opened if p.startswith(tuple({test_folders!r}))]
assert not read, read
assert any("trainA" in p for p in opened)  # the hook does see the images opened
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)
    records = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    best = min(records, key=lambda r: r["selection_fd"])
    weights = load_package(run / "package").manifest.training["weights"]
    assert weights["kind"] == "selected on the validation split"
    assert weights["step"] == best["step"]


def test_the_validation_split_is_disjoint_deterministic_and_never_empty() -> None:
    files = sorted((FIXTURES / "trainA").iterdir())
    kept, held = split_validation(files, 0.3)
    assert held and kept and not set(kept) & set(held)
    assert set(kept) | set(held) == set(files)
    assert split_validation(list(reversed(files)), 0.3)[1] == list(reversed(held))
    assert split_validation(files, 0.0) == (files, [])
    # the Fréchet distance needs two held-out images: a tiny share still holds out two
    kept, held = split_validation(files, 0.01)
    assert len(held) == 2 and len(kept) == len(files) - 2
    with pytest.raises(DataError, match="needs at least 3"):
        split_validation(files[:2], 0.5)


def test_init_from_restores_the_carried_discriminators_and_refuses_a_misfit(
    tiny_data: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    assert train_cli(tiny_data, first, "--max-steps", "2", "--d-arch", "both") == 0
    package = first / "package"
    carried = load_file(str(adversary_path(package)))
    assert {key.split(".")[0] for key in carried} == {
        "discriminator_a", "discriminator_b", "projected_a", "projected_b"
    }  # fmt: skip
    assert all(value.dtype == torch.float16 for value in carried.values())
    assert not any("adversary" in p.name for p in package.iterdir())  # beside, not inside

    config = tiny_config(tiny_data, d_arch="both", init_from=package)
    from training.train import start_state

    state, init_record = start_state(config, CPU, None)
    assert init_record["adversary"]["restored"] == [
        "discriminator_a", "discriminator_b", "projected_a", "projected_b"
    ]  # fmt: skip
    for key, value in state.discriminators.projected_b.state_dict().items():
        assert torch.equal(value, carried[f"projected_b.{key}"].float()), key

    grown = tmp_path / "grown"
    assert train_cli(tiny_data, grown, "--max-steps", "1", "--d-arch", "both",
                     "--init-from", str(package)) == 0  # fmt: skip
    record = load_package(grown / "package").manifest.training["init_from"]
    assert record["adversary"]["file"] == "package.adversary.safetensors"

    misfit = tiny_config(tiny_data, d_arch="both", ndf=16, init_from=package)
    with pytest.raises(PackageError, match="discriminator_a does not fit this run: ndf 8"):
        start_state(misfit, CPU, None)


def test_plot_validation_draws_every_run(tmp_path: Path) -> None:
    from training.__main__ import main

    for name, fd in (("patch", 300.0), ("both", 250.0)):
        run = tmp_path / name
        run.mkdir()
        records = [{"step": s, "minutes": s / 100, "selection_fd": fd - s,
                    "raw_selection_fd": fd - s + 5} for s in (100, 200)]  # fmt: skip
        (run / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "curves.png"
    assert main(["plot-validation", f"baseline={tmp_path / 'patch'}", str(tmp_path / "both"),
                 "--out", str(out)]) == 0  # fmt: skip
    from PIL import Image

    with Image.open(out) as image:
        assert image.size[0] > 300 and image.size[1] > 150
    with pytest.raises(ValueError, match="no validation records"):
        from training.tools.plot import plot_validation

        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "validation.jsonl").write_text("")
        plot_validation({"empty": tmp_path / "empty"}, tmp_path / "no.png")
