"""`python -m training train | distill | interpolate | plot | package | evaluate | compare`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from cyclegan.backends.base import BackendUnavailable
from cyclegan.package import PackageError, write_json_atomic
from training.checkpoint import checkpoint_path, load_checkpoint
from training.config import TrainConfig, read_config_file, resolve_config
from training.data import DataError
from training.distill.student import DistillConfig, distill
from training.flags import add_model_flags, given_values

log = logging.getLogger("training")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a CycleGAN on DIR/trainA and DIR/trainB")
    train.add_argument(
        "--out", type=Path, required=True, help="run folder (checkpoints, logs, package)"
    )
    train.add_argument(
        "--config", type=Path, help="YAML or JSON file of settings; flags override it"
    )
    train.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    add_model_flags(train, TrainConfig)  # --data may come from --config

    distill = commands.add_parser(
        "distill", help="train a small fast student that reproduces a teacher package"
    )
    distill.add_argument(
        "--out", type=Path, required=True, help="run folder; package in OUT/package"
    )
    add_model_flags(distill, DistillConfig, required=("teacher", "data"))

    interpolate = commands.add_parser(
        "interpolate", help="a package whose weights are alpha * A + (1 - alpha) * B"
    )
    interpolate.add_argument("a", type=Path, help="a package (e.g. the L1-distilled student)")
    interpolate.add_argument(
        "b", type=Path, help="a relative of A: one grown from it, or from a common ancestor"
    )
    interpolate.add_argument(
        "--alpha", type=float, required=True, help="the weight of A, in [0, 1]"
    )
    interpolate.add_argument("--out", type=Path, required=True, help="the new package's folder")

    plot = commands.add_parser("plot", help="draw RUN/metrics.jsonl as RUN/curves.png")
    plot.add_argument("run", type=Path, help="a run folder, or a model package (it keeps the log)")
    plot.add_argument("--watch", action="store_true", help="redraw as the log grows (Ctrl-C ends)")

    curves = commands.add_parser(
        "plot-validation", help="validation scores of several runs against training minutes"
    )
    curves.add_argument("runs", nargs="+", metavar="LABEL=RUN", help="run folders, labelled")
    curves.add_argument("--out", type=Path, required=True, help="the PNG to write")

    package = commands.add_parser("package", help="write a model package from a run's checkpoint")
    package.add_argument("--run", type=Path, required=True)
    package.add_argument("--out", type=Path, required=True)
    package.add_argument(
        "--fp16-weights", action="store_true", help="store the weights in half precision"
    )

    evaluate = commands.add_parser("evaluate", help="measure a package on DIR/testA, testB")
    evaluate.add_argument("--package", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True, help="folder with train/test A/B")
    evaluate.add_argument("--out", type=Path, help="report JSON (default PACKAGE/evaluation.json)")
    evaluate.add_argument(
        "--inception-weights", type=Path,
        help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth, for standard FID/KID",
    )  # fmt: skip
    evaluate.add_argument(
        "--classifier-cache", type=Path, default=Path("runs/classifiers"),
        help="where the domain classifier is cached (trained on first use)",
    )  # fmt: skip
    evaluate.add_argument("--resolution", type=int, help="default: the package's native one")
    evaluate.add_argument(
        "--classifier-seeds", type=int, default=3, metavar="N",
        help="train the domain classifier with N seeds; report each domain score's mean and "
        "spread (the first seed's stays the domain score)",
    )  # fmt: skip
    evaluate.add_argument(
        "--judge", choices=["auto", "lite0", "lite1", "none"], default="auto",
        help="the ImageNet network for FD-Lite and the ImageNet check; auto: the Lite that "
        "training's discriminator did not use",
    )  # fmt: skip
    evaluate.add_argument(
        "--teacher", type=Path, help="a student's teacher package: also PSNR against its outputs"
    )
    evaluate.add_argument("--limit", type=int, help="at most this many test images per domain")
    evaluate.add_argument(
        "--write-package", action="store_true", help="also store the results in model.json"
    )
    evaluate.add_argument(
        "--graph", choices=["pytorch", "int8"], default="pytorch",
        help="translate with the PyTorch weights, or the INT8 ONNX graph the CPU serves",
    )  # fmt: skip
    example = commands.add_parser(
        "example", help="store a photo and its translation per direction in a package (the page's)"
    )
    example.add_argument("--package", type=Path, required=True)
    example.add_argument(
        "--image", action="append", required=True, metavar="DOMAIN=PATH",
        help="a test photo of DOMAIN, e.g. horse=examples/horse.jpg; once per domain",
    )  # fmt: skip
    compare = commands.add_parser(
        "compare", help="evaluation reports side by side, as a Markdown table"
    )
    compare.add_argument(
        "reports", nargs="+", metavar="[LABEL=]REPORT", help="JSON from python -m training evaluate"
    )
    compare.add_argument("--out", type=Path, help="also write the table to this file")
    return parser


def run_train(args: argparse.Namespace) -> int:
    from training.train import train

    flag_values = given_values(args, TrainConfig)
    file_values = read_config_file(args.config) if args.config else {}
    base = None
    if args.resume:
        base = load_checkpoint(checkpoint_path(args.out))["config"]
    config = resolve_config(file_values, flag_values, base)
    if base is not None:
        before = TrainConfig.model_validate(base)
        fixed = (
            "ngf", "n_blocks", "upsample", "ndf", "n_layers", "d_norm", "domains", "d_arch",
            "feature_network", "val_fraction",
        )  # fmt: skip
        changed = [key for key in fixed if getattr(config, key) != getattr(before, key)]
        if bool(config.ema) != bool(before.ema):
            changed.append("ema (on or off)")
        if changed:
            raise ValueError(f"cannot change {', '.join(changed)} when resuming a run")
    return train(config, args.out, resume=args.resume, command=args.argv)


def run_distill(args: argparse.Namespace) -> int:
    config = DistillConfig.model_validate(given_values(args, DistillConfig))
    distill(config, args.out, args.argv)
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from training.distill.interpolate import interpolate

    interpolate(args.a, args.b, args.alpha, args.out, args.argv)
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from training.tools.plot import plot_run

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --watch
        plot_run(args.run, watch=args.watch)
    return 0


def run_plot_validation(args: argparse.Namespace) -> int:
    from training.tools.plot import plot_validation

    runs = {}
    for argument in args.runs:
        label, _, path = argument.rpartition("=")
        runs[label or Path(path).name] = Path(path)
    log.info("validation curves written: %s", plot_validation(runs, args.out))
    return 0


def run_package(args: argparse.Namespace) -> int:
    from training.packaging import package_checkpoint

    saved = load_checkpoint(checkpoint_path(args.run))
    package = package_checkpoint(saved, args.out, args.run, fp16_weights=args.fp16_weights)
    log.info(
        "model package written: %s (step %s)", package.path, package.manifest.training["steps"]
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from cyclegan.package import load_package
    from training.quality.classifier import load_or_train_classifier
    from training.quality.evaluate import evaluate_package

    package = load_package(args.package)
    if args.write_package and args.graph != "pytorch":
        raise ValueError(
            "--write-package stores the PyTorch weights' evaluation; an INT8 report goes to --out"
        )
    if not (args.data / "testA").is_dir() or not (args.data / "testB").is_dir():
        raise DataError(f"{args.data}: needs testA/ and testB/ to evaluate on")
    inception = None
    if args.inception_weights is not None:
        from training.quality.inception import load_fid_inception

        inception = load_fid_inception(args.inception_weights)
    classifier = load_or_train_classifier(args.data, args.classifier_cache)
    more_classifiers = [
        load_or_train_classifier(args.data, args.classifier_cache, seed)
        for seed in range(1, args.classifier_seeds)
    ]
    judge_network = None
    if args.judge != "none":
        from training.feature_network import FeatureNetwork
        from training.quality.imagenet_check import judge_for

        trained_with = package.manifest.training.get("config", {}).get("feature_network")
        name = judge_for(trained_with or "lite0") if args.judge == "auto" else args.judge
        judge_network = FeatureNetwork(name)
    teacher = load_package(args.teacher) if args.teacher else None
    out = args.out or package.path / "evaluation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = evaluate_package(
        package, args.data, classifier, inception, args.resolution, args.limit,
        grid_path=out.with_suffix(".png"), teacher=teacher, graph=args.graph,
        judge_network=judge_network, more_classifiers=more_classifiers,
    )  # fmt: skip
    write_json_atomic(out, report)
    log.info("report written: %s (grid %s)", out, out.with_suffix(".png"))
    if args.write_package:
        package.manifest.evaluation = report
        package.save_manifest()
        log.info("evaluation stored in %s", package.path / "model.json")
    return 0


def run_example(args: argparse.Namespace) -> int:
    from cyclegan.package import load_package
    from training.example import parse_images, store_examples

    package = load_package(args.package)
    done = store_examples(package, parse_images(args.image))
    log.info("examples stored in %s for %s", package.path, ", ".join(done) or "no direction")
    return 0 if done else 2


def run_compare(args: argparse.Namespace) -> int:
    from training.quality.compare import CompareError, markdown_table, read_reports

    try:
        table = "\n".join(markdown_table(read_reports(args.reports))) + "\n"
    except CompareError as error:
        log.error("%s", error)
        return 2
    sys.stdout.write(table)
    if args.out:
        args.out.write_text(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "train": run_train,
        "distill": run_distill,
        "interpolate": run_interpolate,
        "plot": run_plot,
        "plot-validation": run_plot_validation,
        "package": run_package,
        "evaluate": run_evaluate,
        "example": run_example,
        "compare": run_compare,
    }
    try:
        return handlers[args.command](args)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        log.error("invalid settings: %s", problems)
    except (
        FileNotFoundError, FileExistsError, ValueError, DataError, PackageError,
        BackendUnavailable,
    ) as error:  # fmt: skip
        log.error("%s", error)  # these messages already say what is wrong and where
    return 2


if __name__ == "__main__":
    sys.exit(main())
