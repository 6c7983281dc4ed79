"""Command-line flags made from the config models' fields: one field, one flag."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from training.__main__ import build_parser
from training.config import TrainConfig, resolve_config
from training.distill.student import DistillConfig
from training.flags import add_model_flags, given_values


class Toy(BaseModel):
    """A config of every kind of field the flags know."""

    data: Path = Field(description="where the images are")
    steps: int = Field(10, description="how many steps")
    mode: Literal["fast", "slow"] = "fast"
    shuffle: bool = True
    dry_run: bool = False
    pair: tuple[str, str] = Field(("x", "y"), json_schema_extra={"metavar": ["A", "B"]})
    tags: tuple[str, ...] = ()
    limit: float | None = None


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    add_model_flags(parser, Toy, required=("data",))
    return parser


def test_each_field_is_a_flag_of_its_type() -> None:
    args = toy_parser().parse_args([
        "--data", "d", "--steps", "3", "--mode", "slow", "--no-shuffle", "--dry-run",
        "--pair", "p", "q", "--tags", "a,,b", "--limit", "0.5",
    ])  # fmt: skip
    assert given_values(args, Toy) == {
        "data": Path("d"), "steps": 3, "mode": "slow", "shuffle": False, "dry_run": True,
        "pair": ["p", "q"], "tags": ("a", "b"), "limit": 0.5,
    }  # fmt: skip
    assert Toy.model_validate(given_values(args, Toy)).pair == ("p", "q")


def test_flags_not_given_are_left_to_the_file_and_the_defaults() -> None:
    assert given_values(toy_parser().parse_args(["--data", "d"]), Toy) == {"data": Path("d")}


@pytest.mark.parametrize(
    "argv",
    [[], ["--data", "d", "--mode", "medium"], ["--data", "d", "--steps", "many"]],
    ids=["required flag missing", "not one of the choices", "not a number"],
)
def test_argparse_refuses_what_the_type_rules_out(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        toy_parser().parse_args(argv)
    assert exit_.value.code == 2


def test_help_is_the_description_and_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        toy_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--steps STEPS how many steps (default: 10)" in text
    assert "--mode {fast,slow} default: fast" in text
    assert "--pair A B default: x,y" in text
    assert "--no-shuffle turns off: shuffle" in text and "--dry-run" in text


def test_a_field_without_a_command_line_form_is_refused() -> None:
    class Odd(BaseModel):
        weights: dict[str, float] = {}

    with pytest.raises(TypeError, match="weights: no command-line form"):
        add_model_flags(argparse.ArgumentParser(), Odd)


def test_train_flags_keep_their_names_and_forms() -> None:
    argv = [
        "train", "--out", "run", "--data", "d", "--domains", "horse", "zebra", "--no-flip",
        "--diffaugment", "color,translation", "--lambda-cycle-b", "5", "--d-warmup-steps", "10",
        "--init-from", "models/h2z", "--d-arch", "projected", "--precision", "bf16",
        "--max-minutes", "1.5", "--ngf", "8",
    ]  # fmt: skip
    config = resolve_config({}, given_values(build_parser().parse_args(argv), TrainConfig))
    assert (config.domains, config.flip, config.diffaugment) == (
        ("horse", "zebra"), False, ("color", "translation"),
    )  # fmt: skip
    assert (config.lambda_cycle_b, config.d_warmup_steps, config.init_from) == (
        5.0, 10, Path("models/h2z"),
    )  # fmt: skip
    assert (config.d_arch, config.precision, config.max_minutes, config.ngf) == (
        "projected", "bf16", 1.5, 8,
    )  # fmt: skip


def test_a_config_file_fills_what_the_flags_leave() -> None:
    args = build_parser().parse_args(["train", "--out", "run", "--lambda-cycle", "7"])
    file_values = {"data": "d", "lambda_cycle": 5.0, "ngf": 16}
    config = resolve_config(file_values, given_values(args, TrainConfig))
    assert (config.lambda_cycle, config.ngf, config.n_blocks) == (7.0, 16, 9)  # 9: the default


def test_distill_needs_teacher_and_data_and_has_every_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["distill", "--out", "run", "--data", "d"])
    assert "the following arguments are required: --teacher" in capsys.readouterr().err
    argv = [
        "distill", "--out", "run", "--teacher", "t", "--data", "d", "--arch", "resnet",
        "--lambda-l1", "5", "--only", "horse2zebra", "--seed", "3",
    ]  # fmt: skip
    config = DistillConfig.model_validate(
        given_values(build_parser().parse_args(argv), DistillConfig)
    )
    assert (config.teacher, config.arch, config.lambda_l1, config.only, config.seed) == (
        Path("t"), "resnet", 5.0, "horse2zebra", 3,
    )  # fmt: skip
    assert config.steps == 6000  # not given: the model's default
