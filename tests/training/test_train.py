"""The training loop and its command line, on tiny networks and a few real images."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cyclegan.package import load_package
from tests.builders import ROOT, TINY_FLAGS, first_batch, tiny_config, train_cli
from training.__main__ import main
from training.checkpoint import checkpoint_path, load_checkpoint
from training.config import TrainConfig
from training.networks import build_state
from training.placement import Placement
from training.schedule import learning_rate
from training.step import train_step


@pytest.mark.parametrize("gan_loss", ["lsgan", "vanilla", "hinge"])
def test_one_step_moves_every_network(tiny_data: Path, gan_loss: str) -> None:
    config = tiny_config(tiny_data, gan_loss=gan_loss, batch_size=2)
    placement = Placement(torch.device("cpu"), None, 0, 1)
    state = build_state(config, placement.device, False, 0)
    before = {
        name: [p.detach().clone() for p in module.parameters()]
        for name, module in [
            ("generator_ab", state.generators.generator_ab),
            ("generator_ba", state.generators.generator_ba),
            ("discriminator_a", state.discriminators.discriminator_a),
            ("discriminator_b", state.discriminators.discriminator_b),
        ]
    }
    losses = train_step(first_batch(config), state, config, placement)
    assert state.step == 1
    assert set(losses) == {
        "loss_G", "loss_G_GAN", "loss_G_cycle", "loss_G_identity", "loss_G_content", "loss_D"
    }  # fmt: skip
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    modules = dict(
        generator_ab=state.generators.generator_ab, generator_ba=state.generators.generator_ba,
        discriminator_a=state.discriminators.discriminator_a,
        discriminator_b=state.discriminators.discriminator_b,
    )  # fmt: skip
    for name, module in modules.items():
        moved = any(
            not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True)
        )
        assert moved, f"{name} did not change"


def test_identity_loss_can_be_turned_off(tiny_data: Path) -> None:
    config = tiny_config(tiny_data, lambda_identity=0)
    placement = Placement(torch.device("cpu"), None, 0, 1)
    state = build_state(config, placement.device, False, 0)
    assert train_step(first_batch(config), state, config, placement)["loss_G_identity"] == 0.0


def test_bf16_autocast_step_runs_on_cpu(tiny_data: Path) -> None:
    config = tiny_config(tiny_data)
    placement = Placement(torch.device("cpu"), torch.bfloat16, 0, 1)
    state = build_state(config, placement.device, False, 0)
    losses = train_step(first_batch(config), state, config, placement)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_learning_rate_schedule() -> None:
    config = TrainConfig(data=Path("."), epochs=2, epochs_decay=2, lr=1.0)
    assert [learning_rate(config, s, 10) for s in (0, 19, 20, 30, 40, 50)] == [
        1.0, 1.0, 1.0, 0.5, 0.0, 0.0,
    ]  # fmt: skip


def test_training_run_writes_logs_samples_checkpoint_and_package(
    tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    code = train_cli(
        tiny_data, run, "--domains", "horse", "zebra", "--max-steps", "4", "--log-every", "2",
        "--sample-every", "2", "--checkpoint-every", "3",
    )  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for key in ("epoch", "lr", "loss_G", "loss_G_GAN", "loss_G_cycle", "loss_G_identity", "loss_D"):
        assert key in records[0]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png",
    ]  # fmt: skip
    assert load_checkpoint(checkpoint_path(run))["step"] == 4
    package = load_package(run / "package")
    assert package.manifest.domains == ("horse", "zebra")
    assert package.manifest.training["steps"] == 4
    assert "--max-steps" in package.manifest.training["commands"][0]
    assert json.loads((run / "config.json").read_text())["ngf"] == 8


def test_resume_is_exact(tiny_data: Path, tmp_path: Path) -> None:
    """2N steps in one go == N steps, stop, resume, N more (same seed, CPU)."""
    flags = ("--pool-size", "2", "--batch-size", "2", "--checkpoint-every", "100")
    assert train_cli(tiny_data, tmp_path / "whole", "--max-steps", "6", *flags) == 0
    assert train_cli(tiny_data, tmp_path / "split", "--max-steps", "3", *flags) == 0
    # The resumed half loads data in a worker process: same images either way.
    assert (
        train_cli(tiny_data, tmp_path / "split", "--resume", "--max-steps", "6", "--workers", "1")
        == 0
    )
    whole = load_checkpoint(checkpoint_path(tmp_path / "whole"))
    split = load_checkpoint(checkpoint_path(tmp_path / "split"))
    assert whole["step"] == split["step"] == 6
    for net in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        for key, value in whole[net].items():
            torch.testing.assert_close(
                split[net][key], value, rtol=0, atol=1e-6, msg=f"{net}.{key}"
            )


def test_config_file_then_flags(tiny_data: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "train.yaml"
    config_file.write_text("domains: [cat, dog]\nmax-steps: 2\nlambda_cycle: 5.0\nngf: 16\n")
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "--config", str(config_file), "--lambda-cycle", "7") == 0
    saved = json.loads((run / "config.json").read_text())
    # TINY_FLAGS set ngf 8 on the command line, which beats the file's 16
    assert (saved["domains"], saved["max_steps"], saved["lambda_cycle"], saved["ngf"]) == (
        ["cat", "dog"], 2, 7.0, 8,
    )  # fmt: skip
    assert set(load_package(run / "package").manifest.directions) == {"cat2dog", "dog2cat"}


def test_bad_settings_fail_before_work(tiny_data: Path, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    assert train_cli(tiny_data, tmp_path / "r1", "--image-size", "30", "--max-steps", "1") == 2
    assert "multiple of 4" in caplog.text
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("learning_rate: 1\n")
    assert train_cli(tiny_data, tmp_path / "r2", "--config", str(bad_file)) == 2
    assert "learning_rate: Extra inputs are not permitted" in caplog.text
    empty = tmp_path / "empty"
    (empty / "trainA").mkdir(parents=True)
    (empty / "trainB").mkdir()
    assert train_cli(empty, tmp_path / "r3", "--max-steps", "1") == 2
    assert "trainA: no readable images (folder is empty)" in caplog.text
    assert not (tmp_path / "r3" / "checkpoints").exists()


def test_existing_run_needs_resume_and_keeps_its_shape(
    tiny_data: Path, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "--max-steps", "1") == 0
    assert train_cli(tiny_data, run, "--max-steps", "2") == 2
    assert "pass --resume" in caplog.text
    assert train_cli(tiny_data, run, "--resume", "--max-steps", "2", "--ngf", "16") == 2
    assert "cannot change ngf" in caplog.text
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint" in caplog.text


def test_package_command(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "--max-steps", "2") == 0
    assert main(["package", "--run", str(run), "--out", str(tmp_path / "pkg")]) == 0
    assert load_package(tmp_path / "pkg").manifest.training["steps"] == 2


def wait_for(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_a_checkpoint_then_resume_finishes(
    tiny_data: Path, tmp_path: Path, signum: int
) -> None:
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "training", "train", "--data", str(tiny_data), "--out", str(run),
        *TINY_FLAGS, "--max-steps", "100000", "--log-every", "1", "--checkpoint-every", "100000",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (run / "metrics.jsonl").is_file(), timeout=120)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    assert "continue with --resume" in stderr
    step = load_checkpoint(checkpoint_path(run))["step"]
    assert 1 <= step < 100000
    assert train_cli(tiny_data, run, "--resume", "--max-steps", str(step + 2)) == 0
    assert load_checkpoint(checkpoint_path(run))["step"] == step + 2


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_replicas_equal(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "training", "train", "--data", str(tiny_data), "--out", str(run), *TINY_FLAGS,
        "--batch-size", "2", "--max-steps", "4", "--checkpoint-every", "2",
        "--d-arch", "both", "--ema", "0.9",  # every discriminator kind, and the average
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training a2b on cpu (2 processes" in result.stderr
    assert result.stderr.count("2 DDP replicas in sync") == 2  # at step 2 and at the end
    saved = load_checkpoint(checkpoint_path(run))
    assert saved["step"] == 4 and saved["world_size"] == 2 and len(saved["pools"]) == 2
    # Each rank saw different images, so their pools differ.
    assert not torch.equal(saved["pools"][0]["a"]["images"][0], saved["pools"][1]["a"]["images"][0])
    assert {"projected_a", "discriminator_a", "average_ab"} <= set(saved)
    load_package(run / "package")
