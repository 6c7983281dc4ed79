"""The training options against weak translations: resize upsampling, DiffAugment, spectral
norm, a per-domain cycle weight, a time budget, warm starts, and the curves plot."""

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from compile.__main__ import main as compile_main
from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend
from cyclegan.generator import GeneratorConfig, build_generator, count_macs
from cyclegan.package import load_package
from tests.builders import first_batch, make_package, tiny_config, train_cli
from training.__main__ import main
from training.checkpoint import checkpoint_path, load_checkpoint
from training.diffaugment import POLICIES, diff_augment
from training.discriminator import PatchDiscriminator
from training.init_from import copy_generator, init_generators_from
from training.networks import build_state
from training.placement import Placement
from training.step import train_step
from training.tools.plot import read_log

RESIZE = GeneratorConfig(ngf=8, n_blocks=1, upsample="resize")


def test_resize_generator_has_no_transposed_convolutions() -> None:
    net = build_generator(RESIZE)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert net(torch.zeros(2, 3, 36, 20)).shape == (2, 3, 36, 20)
    # a resize-conv runs at the output resolution: 4x the MACs of the same deconv layer
    deconv = RESIZE.model_copy(update={"upsample": "deconv"})
    assert count_macs(RESIZE, 64, 64) > count_macs(deconv, 64, 64)


def test_resize_generator_exports_to_onnx_with_parity(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg", RESIZE)
    assert compile_main(["onnx", "--package", str(package_dir)]) == 0
    package = load_package(package_dir)
    assert package.direction("horse2zebra").generator.upsample == "resize"
    info = package.direction("horse2zebra").onnx
    assert info is not None and info.max_abs_error <= 1e-4
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 40, 56)).astype(np.float32)
    with torch.no_grad():
        expected = package.load_generator("horse2zebra")(torch.from_numpy(x)).numpy()
    assert np.abs(OnnxRuntimeBackend(package_dir / info.file).translate(x) - expected).max() < 1e-4


def test_deconv_to_resize_copy_is_a_box_blurred_transposed_conv() -> None:
    """The warm start's conversion: nearest upsampling + the flipped kernel == deconv * box."""
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=False)
    conv = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    copy_generator(deconv, conv)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        y = deconv(x)
        z = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    padded = F.pad(y, (1, 0, 1, 0))  # each output pixel = sum of a 2x2 block of y
    box = padded[..., 1:, 1:] + padded[..., :-1, 1:] + padded[..., 1:, :-1] + padded[..., :-1, :-1]
    torch.testing.assert_close(z[..., 1:-1, 1:-1], box[..., 1:-1, 1:-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("policy", [*[(name,) for name in POLICIES], tuple(POLICIES)])
def test_diffaugment_keeps_shape_is_random_and_passes_gradients(policy: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    x = (torch.rand(4, 3, 32, 24) * 2 - 1).requires_grad_()
    y = diff_augment(x, policy)
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, ()), x)


def test_cutout_and_translation_zero_what_they_remove() -> None:
    x = torch.ones(8, 3, 32, 32)
    cut = POLICIES["cutout"](x)
    assert ((cut == 0).float().mean(dim=(1, 2, 3)) > 0).all()  # every image lost a square
    shifted = POLICIES["translation"](x)
    assert set(shifted.unique().tolist()) <= {0.0, 1.0}  # moved, padded with zeros


def test_spectral_norm_discriminator_bounds_its_layers() -> None:
    torch.manual_seed(0)
    net = PatchDiscriminator(ndf=8, n_layers=2, norm="spectral")
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())
    net(torch.randn(2, 3, 64, 64))  # a forward pass runs the power iteration
    first = net.model[0]
    sigma = torch.linalg.matrix_norm(first.weight.detach().flatten(1), ord=2)
    assert float(sigma) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    "options",
    [
        {"diffaugment": ("color", "translation", "cutout")},
        {"d_norm": "spectral"},
        {"upsample": "resize"},
        {"lambda_cycle_b": 0.0},
    ],
    ids=["diffaugment", "spectral", "resize", "lambda_cycle_b"],
)
def test_each_option_trains_a_step(tiny_data: Path, options: dict[str, object]) -> None:
    config = tiny_config(tiny_data, **options)
    placement = Placement(torch.device("cpu"), None, 0, 1)
    state = build_state(config, placement.device, False, 0)
    before = [p.detach().clone() for p in state.discriminators.parameters()]
    losses = train_step(first_batch(config), state, config, placement)
    assert all(math.isfinite(v) for v in losses.values())
    after = list(state.discriminators.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_lambda_cycle_b_weights_only_the_b_cycle(tiny_data: Path) -> None:
    def cycle_loss_with(**options: object) -> float:
        config = tiny_config(tiny_data, lambda_identity=0, **options)
        placement = Placement(torch.device("cpu"), None, 0, 1)
        state = build_state(config, placement.device, False, 0)  # same seed: same networks
        return train_step(first_batch(config), state, config, placement)["loss_G_cycle"]

    both = cycle_loss_with()
    only_a = cycle_loss_with(lambda_cycle_b=0.0)
    doubled_b = cycle_loss_with(lambda_cycle_b=20.0)
    assert 0 < only_a < both
    assert doubled_b == pytest.approx(both + (both - only_a), rel=1e-4)


def test_d_warmup_trains_only_the_discriminators_then_both(tiny_data: Path) -> None:
    config = tiny_config(tiny_data, d_warmup_steps=2)
    placement = Placement(torch.device("cpu"), None, 0, 1)
    state = build_state(config, placement.device, False, 0)

    def snapshot() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return (
            [p.detach().clone() for p in state.generators.parameters()],
            [p.detach().clone() for p in state.discriminators.parameters()],
        )

    def moved(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))

    batch = first_batch(config)
    for _ in range(2):  # warm-up: the generators hold still, the discriminators learn
        g, d = snapshot()
        losses = train_step(batch, state, config, placement)
        assert not moved(g, state.generators) and moved(d, state.discriminators)
        assert math.isnan(losses["loss_G"]) and math.isfinite(losses["loss_D"])
    g, d = snapshot()  # then both, as usual
    losses = train_step(batch, state, config, placement)
    assert moved(g, state.generators) and moved(d, state.discriminators)
    assert all(math.isfinite(v) for v in losses.values())


def test_max_minutes_stops_checkpoints_and_packages(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # a budget of ~0 minutes: the first step ends it, by the same path as a finished run
    assert train_cli(tiny_data, run, "--max-steps", "100000", "--max-minutes", "0.0001") == 0
    step = load_checkpoint(checkpoint_path(run))["step"]
    assert 1 <= step < 100000
    assert load_package(run / "package").manifest.training["steps"] == step


def test_init_from_loads_the_generators_and_training_continues(
    tiny_data: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    assert train_cli(tiny_data, first, "--max-steps", "2", "--log-every", "1") == 0
    source = load_package(first / "package")
    # the loaded weights are the package's, exactly
    config = tiny_config(tiny_data)
    state = build_state(config, torch.device("cpu"), False, 0)
    init_generators_from(
        first / "package", state.generators.generator_ab, state.generators.generator_ba,
        config.generator_config(), config.domains,
    )  # fmt: skip
    for key, net in (
        ("a2b", state.generators.generator_ab),
        ("b2a", state.generators.generator_ba),
    ):
        for name, value in source.load_generator(key).state_dict().items():
            torch.testing.assert_close(net.state_dict()[name], value, rtol=0, atol=0)
    # and a run grown from it trains on and says where it came from
    second = tmp_path / "second"
    assert (
        train_cli(tiny_data, second, "--max-steps", "2", "--init-from", str(first / "package")) == 0
    )
    grown = load_package(second / "package").manifest.training
    assert grown["init_from"]["version"] == source.manifest.version
    assert grown["init_from"]["steps"] == 2
    assert grown["init_from"]["commands"] == source.manifest.training["commands"] != []
    assert grown["config"]["init_from"] == "package"  # by name, not this machine's path


def test_init_from_converts_deconv_to_resize(tiny_data: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert train_cli(tiny_data, first, "--max-steps", "1") == 0
    second = tmp_path / "second"
    code = train_cli(
        tiny_data, second, "--max-steps", "1", "--upsample", "resize",
        "--init-from", str(first / "package"),
    )  # fmt: skip
    assert code == 0
    grown = load_package(second / "package")
    assert grown.direction("a2b").generator.upsample == "resize"
    assert grown.manifest.training["init_from"]["upsample_converted"] is True


def test_init_from_refuses_a_package_that_does_not_fit(
    tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = tmp_path / "first"
    assert train_cli(tiny_data, first, "--max-steps", "1") == 0
    package = str(first / "package")
    assert train_cli(tiny_data, tmp_path / "r1", "--init-from", package, "--ngf", "16") == 2
    assert "does not fit this run: ngf 8 (run: 16)" in caplog.text
    assert not (tmp_path / "r1" / "checkpoints").exists()
    assert train_cli(tiny_data, tmp_path / "r2", "--init-from", package, "--domains", "x", "y") == 2
    assert "pass --domains to match" in caplog.text
    resize = tmp_path / "resize"
    assert train_cli(tiny_data, resize, "--max-steps", "1", "--upsample", "resize") == 0
    code = train_cli(tiny_data, tmp_path / "r3", "--init-from", str(resize / "package"))
    assert code == 2 and "a deconv run cannot start from it" in caplog.text
    assert train_cli(tiny_data, tmp_path / "r4", "--init-from", str(tmp_path / "nowhere")) == 2
    assert "not a directory" in caplog.text


def test_plot_draws_a_recorded_log_and_the_package_keeps_it(
    tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "--max-steps", "4", "--log-every", "1") == 0
    (run / "metrics.jsonl").open("a").write('{"step": 5, "loss_G"')  # a live run's torn line
    assert main(["plot", str(run)]) == 0
    png = run / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    package = run / "package"
    assert len(read_log(package / "metrics.jsonl")) == 4
    assert main(["plot", str(package)]) == 0 and (package / "curves.png").is_file()
    assert main(["plot", str(tmp_path)]) == 2  # no log there: a clear error


def test_plot_log_records_round_trip(tmp_path: Path) -> None:
    records = [{"step": i, "loss_G": 1.0 / i, "lr": 0.1} for i in range(1, 50)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert read_log(tmp_path / "metrics.jsonl") == records


def test_throughput_benchmark_times_every_variant_in_rounds(tiny_data: Path) -> None:
    from training.tools.throughput import Variant, markdown, measure

    variants = [
        Variant("baseline"),
        Variant("bf16", bf16=True),
        Variant("channels_last", channels_last=True),
        Variant("1 thread", threads=1),
        Variant("identity off", {"lambda_identity": 0.0}),
    ]
    base = {
        "ngf": 4, "n_blocks": 1, "ndf": 4, "n_layers": 2, "load_size": 36, "image_size": 32,
        "workers": 0,
    }  # fmt: skip
    threads = torch.get_num_threads()
    rows = measure(tiny_data, variants, base, steps=2, rounds=2, warmup=1)
    assert [name for name, _, _ in rows] == [v.name for v in variants]
    assert all(rate > 0 and ratio > 0 for _, rate, ratio in rows)
    table = markdown(rows, 2, 2)
    assert table.count("\n| ") == len(variants) + 1  # header + one row each
    assert torch.get_num_threads() == threads  # the 1-thread variant put the setting back


def test_fp16_weights_halve_the_package_and_keep_onnx_parity(
    tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "--max-steps", "1") == 0
    half = tmp_path / "half"
    assert main(["package", "--run", str(run), "--out", str(half), "--fp16-weights"]) == 0
    full_size = (run / "package" / "generator_ab.safetensors").stat().st_size
    assert (half / "generator_ab.safetensors").stat().st_size < 0.6 * full_size
    net = load_package(half).load_generator("a2b")
    assert all(p.dtype == torch.float32 for p in net.parameters())
    original = load_package(run / "package").load_generator("a2b")
    for key, value in original.state_dict().items():  # fp16 rounding, nothing more
        torch.testing.assert_close(net.state_dict()[key], value, rtol=1e-3, atol=1e-4)
    assert compile_main(["onnx", "--package", str(half)]) == 0
    onnx = load_package(half).direction("a2b").onnx
    assert onnx is not None and onnx.max_abs_error <= 1e-4


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(tmp_path: Path) -> None:
    from cyclegan.cpu_features import cpu_has_bf16
    from training.placement import pick_autocast

    zen4 = tmp_path / "zen4"
    zen4.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16 avx512vl\n")
    older = tmp_path / "older"
    older.write_text("processor : 0\nflags : fpu sse avx2 avx512f\n")
    assert cpu_has_bf16(zen4) and not cpu_has_bf16(older)
    assert not cpu_has_bf16(tmp_path / "absent")
    cpu = torch.device("cpu")
    assert pick_autocast("auto", cpu, cpuinfo=zen4) == torch.bfloat16
    assert pick_autocast("auto", cpu, cpuinfo=older) is None
    assert pick_autocast("fp32", cpu, cpuinfo=zen4) is None
    assert pick_autocast("bf16", cpu) == torch.bfloat16


def test_bf16_asked_for_on_a_cpu_without_it_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from training.placement import pick_autocast

    older = tmp_path / "older"
    older.write_text("processor : 0\nflags : fpu sse avx2 fma\n")
    zen4 = tmp_path / "zen4"
    zen4.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="training.placement"):
        assert pick_autocast("bf16", cpu, cpuinfo=zen4) == torch.bfloat16
        assert not caplog.records
        assert pick_autocast("bf16", cpu, cpuinfo=older) == torch.bfloat16
    assert "without native bf16" in caplog.text
    assert pick_autocast("auto", cpu, cpuinfo=older) is None
