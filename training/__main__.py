"""`python -m training train | package | evaluate`: the trainer's command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from cyclegan.package import PackageError
from training.checkpoint import checkpoint_path, load_checkpoint
from training.config import TrainConfig, read_config_file, resolve_config
from training.data import DataError

log = logging.getLogger("training")

# Flags that map one-to-one onto TrainConfig fields (dashes become underscores).
TRAIN_FLAGS: dict[str, type] = {
    "image-size": int,
    "load-size": int,
    "ngf": int,
    "n-blocks": int,
    "ndf": int,
    "n-layers": int,
    "batch-size": int,
    "epochs": int,
    "epochs-decay": int,
    "max-steps": int,
    "lr": float,
    "lambda-cycle": float,
    "lambda-identity": float,
    "pool-size": int,
    "log-every": int,
    "checkpoint-every": int,
    "sample-every": int,
    "seed": int,
    "workers": int,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a CycleGAN on DIR/trainA and DIR/trainB")
    train.add_argument("--data", type=Path, help="folder with trainA/ and trainB/")
    train.add_argument(
        "--out", type=Path, required=True, help="run folder (checkpoints, logs, package)"
    )
    train.add_argument(
        "--config", type=Path, help="YAML or JSON file of settings; flags override it"
    )
    train.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    train.add_argument(
        "--domains", nargs=2, metavar=("A", "B"), help="domain names, e.g. horse zebra"
    )
    train.add_argument("--name", help="package name (default A2B)")
    train.add_argument("--gan-loss", choices=["lsgan", "vanilla", "hinge"])
    train.add_argument("--device", help="auto, cpu, cuda")
    train.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    train.add_argument("--no-flip", dest="flip", action="store_const", const=False, default=None)
    for flag, kind in TRAIN_FLAGS.items():
        train.add_argument(f"--{flag}", type=kind)

    package = commands.add_parser("package", help="write a model package from a run's checkpoint")
    package.add_argument("--run", type=Path, required=True)
    package.add_argument("--out", type=Path, required=True)

    return parser


def run_train(args: argparse.Namespace) -> int:
    from training.train import train

    flag_values = {
        name.replace("-", "_"): getattr(args, name.replace("-", "_")) for name in TRAIN_FLAGS
    }
    flag_values.update(
        data=args.data,
        domains=args.domains,
        name=args.name,
        gan_loss=args.gan_loss,
        device=args.device,
        precision=args.precision,
        flip=args.flip,
    )
    file_values = read_config_file(args.config) if args.config else {}
    base = None
    if args.resume:
        base = load_checkpoint(checkpoint_path(args.out))["config"]
    config = resolve_config(file_values, flag_values, base)
    if base is not None:
        before = TrainConfig.model_validate(base)
        fixed = ("ngf", "n_blocks", "ndf", "n_layers", "domains")
        changed = [key for key in fixed if getattr(config, key) != getattr(before, key)]
        if changed:
            raise ValueError(f"cannot change {', '.join(changed)} when resuming a run")
    return train(config, args.out, resume=args.resume, command=args.argv)


def run_package(args: argparse.Namespace) -> int:
    from training.train import export_package, read_commands

    package = export_package(
        load_checkpoint(checkpoint_path(args.run)), args.out, read_commands(args.run)
    )
    log.info(
        "model package written: %s (step %s)", package.path, package.manifest.training["steps"]
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {"train": run_train, "package": run_package}
    try:
        return handlers[args.command](args)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        log.error("invalid settings: %s", problems)
    except (FileNotFoundError, FileExistsError, ValueError, DataError, PackageError) as error:
        log.error("%s", error)  # these messages already say what is wrong and where
    return 2


if __name__ == "__main__":
    sys.exit(main())
