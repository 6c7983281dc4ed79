"""`python -m training distill`: a small student learns its teacher's translation."""

import json
from pathlib import Path

import pytest
import torch

from compile.__main__ import main as compile_main
from cyclegan.generator import GeneratorConfig, build_generator, count_macs
from cyclegan.imaging import image_to_tensor
from cyclegan.package import PackageError, load_package, write_package
from tests.builders import tiny_distill
from training.__main__ import main
from training.data import load_image
from training.distill.student import lr_factor


def l1_to_teacher(student: Path, teacher: Path, image: Path) -> float:
    x = image_to_tensor(load_image(image))[None, :, :32, :32]
    s, t = load_package(student), load_package(teacher)
    with torch.no_grad():
        return float((s.load_generator("a2b-fast")(x) - t.load_generator("a2b")(x)).abs().mean())


def assert_moves_toward_the_teacher(
    common: list[str], tiny_data: Path, teacher: Path, tmp_path: Path
) -> None:
    """After 150 steps the student is closer to its teacher than after 1 (RUN s150 is kept)."""
    assert main([*common, "--out", str(tmp_path / "s1"), "--steps", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "s150"), "--steps", "150"]) == 0
    image = next((tiny_data / "testA").iterdir())
    early = l1_to_teacher(tmp_path / "s1" / "package", teacher, image)
    late = l1_to_teacher(tmp_path / "s150" / "package", teacher, image)
    assert late < early * 0.88, (early, late)


def test_student_moves_toward_its_teacher_and_serves_its_own_names(
    tiny_data: Path, teacher: Path, tmp_path: Path
) -> None:
    common = [
        "distill", "--teacher", str(teacher), "--data", str(tiny_data), "--ngf", "4",
        "--n-blocks", "2", "--image-size", "32", "--load-size", "36", "--log-every", "5",
    ]  # fmt: skip
    assert_moves_toward_the_teacher(common, tiny_data, teacher, tmp_path)

    student = load_package(tmp_path / "s150" / "package")
    assert student.name == "a2b-fast"
    assert set(student.manifest.directions) == {"a2b-fast", "b2a-fast"}
    spec = student.direction("a2b-fast")
    assert spec.generator.arch == "mobile" and spec.generator.upsample == "resize"
    training = student.manifest.training
    assert training["distilled_from"]["name"] == "a2b"
    assert training["distilled_from"]["version"] == load_package(teacher).manifest.version
    assert training["macs_per_256px_image"] < training["distilled_from"]["macs_per_256px_image"]
    records = [
        json.loads(line) for line in (student.path / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [5 * i for i in range(1, 31)]
    assert {"l1_ab", "l1_ba", "features_ab", "features_ba"} <= set(records[0])
    # the evaluation measures it against its teacher
    report = tmp_path / "eval.json"
    code = main([
        "evaluate", "--package", str(student.path), "--data", str(tiny_data),
        "--teacher", str(teacher), "--out", str(report),
        "--classifier-cache", str(tmp_path / "cache"),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(report.read_text())["directions"]["a2b-fast"]
    assert result["teacher"].startswith("a2b ") and result["psnr_vs_teacher_db"] > 0
    # an ordinary package: it compiles to ONNX, which matches PyTorch
    assert compile_main(["onnx", "--package", str(student.path)]) == 0
    onnx = load_package(student.path).direction("b2a-fast").onnx
    assert onnx is not None and onnx.max_abs_error <= 1e-4


def test_mobile_blocks_are_cheaper_and_keep_shapes() -> None:
    full = GeneratorConfig(ngf=16, n_blocks=6)
    mobile = GeneratorConfig(arch="mobile", ngf=16, n_blocks=6)
    assert count_macs(mobile, 256, 256) < 0.6 * count_macs(full, 256, 256)
    assert build_generator(mobile)(torch.zeros(1, 3, 44, 28)).shape == (1, 3, 44, 28)


def test_direction_names_follow_the_package_suffix(tmp_path: Path) -> None:
    config = GeneratorConfig(ngf=4, n_blocks=1)
    nets = {k: (build_generator(config), config) for k in ("ab", "ba")}
    package = write_package(
        tmp_path / "p", name="h2z-fast", version="1", domains=("horse", "zebra"),
        generators=nets, native_resolution=32, direction_suffix="-fast",
    )  # fmt: skip
    assert set(package.manifest.directions) == {"horse2zebra-fast", "zebra2horse-fast"}
    manifest = json.loads((tmp_path / "p" / "model.json").read_text())
    manifest["direction_suffix"] = ""  # names no longer fit: refused, saying which name
    (tmp_path / "p" / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="must be named 'horse2zebra'"):
        load_package(tmp_path / "p")


def test_distill_refuses_a_missing_teacher(tiny_data: Path, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    code = main([
        "distill", "--teacher", str(tmp_path / "none"), "--data", str(tiny_data),
        "--out", str(tmp_path / "s"),
    ])  # fmt: skip
    assert code == 2 and "not a directory" in caplog.text


def test_distill_continues_from_a_student_and_refuses_one_of_another_size(
    tiny_data: Path, teacher: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    common = tiny_distill(teacher, tiny_data)
    assert main([*common, "--out", str(tmp_path / "first"), "--steps", "30"]) == 0
    first = tmp_path / "first" / "package"
    # a learning rate too small to move the weights: the second run starts where the first ended
    grown = tmp_path / "grown"
    argv = [
        *common,
        "--out",
        str(grown),
        "--steps",
        "1",
        "--lr",
        "1e-12",
        "--init-from",
        str(first),
    ]
    assert main(argv) == 0
    before = load_package(first).load_generator("a2b-fast").state_dict()
    after = load_package(grown / "package").load_generator("a2b-fast").state_dict()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=1e-6)
    training = load_package(grown / "package").manifest.training
    assert training["init_from"] == {
        "name": "a2b-fast",
        "version": load_package(first).manifest.version,
        "steps": 30,
        "commands": load_package(first).manifest.training["commands"],  # the lineage travels
        "init_from": None,
        "weights_sha256": sorted(
            d.weights.sha256 for d in load_package(first).manifest.directions.values()
        ),
        "inner_layers_only": False,
    }
    assert "--steps" in training["init_from"]["commands"][0]
    assert training["config"]["init_from"] == "package"  # by name, not this machine's path
    # a student of another size is refused, saying what differs
    wider = [*common, "--ngf", "8", "--out", str(tmp_path / "wider"), "--steps", "1"]
    assert main([*wider, "--init-from", str(first)]) == 2
    assert "ngf=4" in caplog.text and "ngf=8" in caplog.text
    assert "pass the same --arch, --ngf and --n-blocks" in caplog.text
    assert not (tmp_path / "wider" / "package").exists()


def test_a_student_with_other_ends_starts_from_the_earlier_ones_inner_layers(
    tiny_data: Path, teacher: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    common = tiny_distill(teacher, tiny_data)
    assert main([*common, "--ends", "conv7", "--out", str(tmp_path / "c7"), "--steps", "20"]) == 0
    first = load_package(tmp_path / "c7" / "package")
    assert first.direction("a2b-fast").generator.ends == "conv7"
    grown = [*common, "--ends", "shuffle", "--steps", "1", "--lr", "1e-12"]
    assert main([*grown, "--out", str(tmp_path / "sh"), "--init-from", str(first.path)]) == 0
    student = load_package(tmp_path / "sh" / "package")
    assert student.direction("a2b-fast").generator.ends == "shuffle"
    assert student.manifest.training["init_from"]["inner_layers_only"] is True
    before = first.load_generator("a2b-fast").inner_layers().state_dict()  # type: ignore[operator]
    after = student.load_generator("a2b-fast").inner_layers().state_dict()  # type: ignore[operator]
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=1e-6)
    # --only would keep the other student as it is: its ends must then be this run's
    only = [*grown, "--only", "a2b", "--out", str(tmp_path / "only")]
    assert main([*only, "--init-from", str(first.path)]) == 2
    assert "--ends must be that student's" in caplog.text
    assert not (tmp_path / "only" / "package").exists()


def test_a_critic_learns_to_tell_the_teacher_from_the_student_and_trains_only_itself() -> None:
    from training.distill.critic import OutputCritic

    torch.manual_seed(0)
    critic = OutputCritic(ndf=8, lr=1e-3, schedule=lambda step: 1.0, device=torch.device("cpu"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    teacher_out = torch.tanh(3 * x.flip(1))  # sharp
    student_out = (0.3 * teacher_out).requires_grad_(True)  # the same, faint
    losses = [critic.step(x, teacher_out, student_out) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses
    with torch.no_grad():
        assert critic.scores(x, teacher_out).mean() > critic.scores(x, student_out).mean() + 0.3
    # the student's adversarial loss reaches the student's output, never the critic
    critic.net.zero_grad(set_to_none=True)
    critic.student_loss(x, student_out).backward()
    assert student_out.grad is not None and student_out.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.net.parameters())
    assert all(p.requires_grad for p in critic.net.parameters())


def test_distill_with_a_critic_logs_its_losses_and_still_moves_toward_the_teacher(
    tiny_data: Path, teacher: Path, tmp_path: Path
) -> None:
    common = [
        "distill", "--teacher", str(teacher), "--data", str(tiny_data), "--ngf", "4",
        "--n-blocks", "2", "--image-size", "32", "--load-size", "36", "--log-every", "10",
        "--lambda-gan", "0.5", "--critic-ndf", "8",
    ]  # fmt: skip
    assert_moves_toward_the_teacher(common, tiny_data, teacher, tmp_path)
    student = load_package(tmp_path / "s150" / "package")
    records = [
        json.loads(line) for line in (student.path / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"gan_ab", "gan_ba", "critic_ab", "critic_ba"} <= set(records[-1])
    assert student.manifest.training["config"]["lambda_gan"] == 0.5
    # the critics are not part of the package: it holds the two students only
    assert sorted(p.name for p in student.path.glob("*.safetensors")) == [
        "generator_ab.safetensors",
        "generator_ba.safetensors",
    ]


def test_distill_only_one_direction_keeps_the_other_student_as_it_was(
    tiny_data: Path, teacher: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    common = tiny_distill(teacher, tiny_data)
    assert main([*common, "--out", str(tmp_path / "first"), "--steps", "5"]) == 0
    first = tmp_path / "first" / "package"
    only = [*common, "--out", str(tmp_path / "only"), "--steps", "10", "--only", "a2b"]
    gan = ["--lambda-gan", "0.5", "--critic-ndf", "8"]
    assert main([*only, "--init-from", str(first), *gan]) == 0
    before, after = load_package(first), load_package(tmp_path / "only" / "package")
    kept = after.load_generator("b2a-fast").state_dict()
    for name, value in before.load_generator("b2a-fast").state_dict().items():
        assert torch.equal(kept[name], value), name
    trained = after.load_generator("a2b-fast").state_dict()
    moved = [
        name
        for name, value in before.load_generator("a2b-fast").state_dict().items()
        if not torch.equal(trained[name], value)
    ]
    assert moved
    records = (tmp_path / "only" / "metrics.jsonl").read_text().splitlines()
    assert "l1_ab" in records[-1] and "l1_ba" not in records[-1]
    assert after.manifest.training["config"]["only"] == "a2b"
    # refused before any training: no --init-from to copy the other student from, or a
    # direction the teacher does not translate
    assert main([*only, "--out", str(tmp_path / "alone")]) == 2
    assert "--only a2b needs --init-from" in caplog.text
    assert main([*only[:-1], "zebra2horse", "--init-from", str(first)]) == 2
    assert "the teacher translates a2b, b2a" in caplog.text
    assert not (tmp_path / "alone").exists()


def test_the_student_lr_holds_for_half_the_steps_then_falls_to_zero() -> None:
    factors = [lr_factor(step, 10) for step in (0, 5, 6, 8, 10)]
    assert factors == pytest.approx([1.0, 1.0, 0.8, 0.4, 0.0])
