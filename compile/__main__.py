"""`python -m compile onnx | quantize | tensorrt | verify | benchmark | operators | rate`, each
with `--package PKG`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cyclegan.backends import BackendUnavailable
from cyclegan.package import PackageError, load_package

log = logging.getLogger("compile")
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "horse2zebra"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compile", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    onnx = commands.add_parser("onnx", help="export fp32 and fp16 ONNX graphs, verified")
    onnx.add_argument("--package", type=Path, required=True)

    quantize = commands.add_parser("quantize", help="static INT8 graphs for the CPU, gated")
    quantize.add_argument("--package", type=Path, required=True)
    quantize.add_argument(
        "--calibration", type=Path, help="DIR with trainA/trainB (calibration) and testA/testB "
        "(the PSNR gate); without it, each direction's example photo stored in the package",
    )  # fmt: skip
    quantize.add_argument("--samples", type=int, help="calibration images per direction")

    trt = commands.add_parser("tensorrt", help="build FP16 TensorRT engines for this GPU")
    trt.add_argument("--package", type=Path, required=True)
    trt.add_argument("--max-batch", type=int, default=16, help="match the service's max batch size")
    trt.add_argument("--opt-batch", type=int, help="default: max-batch / 2")
    trt.add_argument("--min-size", type=int, default=64, help="smallest height/width")
    trt.add_argument("--opt-size", type=int, default=256, help="height/width to tune for")
    trt.add_argument("--max-size", type=int, default=512, help="largest height/width")
    trt.add_argument("--workspace-gib", type=float, default=4.0)
    trt.add_argument(
        "--skip-existing", action="store_true",
        help="keep plans already built for this GPU, TensorRT version, graph and profile",
    )  # fmt: skip

    verify = commands.add_parser("verify", help="compare every available backend with PyTorch")
    verify.add_argument("--package", type=Path, required=True)
    verify.add_argument(
        "--resolution", type=int, help="default: the served one (native, down to a multiple of 4)"
    )
    verify.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    verify.add_argument("--repeats", type=int, default=3)

    operators = commands.add_parser(
        "operators", help="one image's time by operator type, in ONNX Runtime's profiler"
    )
    operators.add_argument("--package", type=Path, required=True)
    operators.add_argument("--resolution", type=int, default=256)
    operators.add_argument("--runs", type=int, default=30, help="profiled runs per direction")
    operators.add_argument("--threads", type=int, default=2, help="ONNX Runtime's threads")

    raw = commands.add_parser("rate", help="images/s of the served ONNX Runtime graph (JSON)")
    raw.add_argument("--package", type=Path, required=True)
    raw.add_argument("--direction", help="default: the package's first")
    raw.add_argument("--batch", type=int, default=1)
    raw.add_argument("--seconds", type=float, default=8.0)
    raw.add_argument("--size", type=int, default=256)

    bench = commands.add_parser("benchmark", help="time every backend in-process (BENCHMARKS.md)")
    bench.add_argument("--package", type=Path, default=DEFAULT_MODEL, help="the default model")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: checks the code only")
    bench.add_argument(
        "--calibration", type=Path, help="data for the INT8 graph, as quantize's (default: the "
        "package's example photos)",
    )  # fmt: skip
    bench.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    bench.add_argument(
        "--figures", type=Path, help="also write the default model's figures here (JSON), "
        "for python -m loadtest.benchmark --runtime-figures",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        package = load_package(args.package)
        if args.command == "onnx":
            from compile.onnx_export import export_onnx_graphs

            for name, info in export_onnx_graphs(package).items():
                log.info(
                    "%s: %s (max abs err %.1e), %s (fp16 PSNR %.1f dB)",
                    name, info.file, info.max_abs_error, info.fp16.file if info.fp16 else "-",
                    info.fp16_psnr_db or 0.0,
                )  # fmt: skip
            return 0
        if args.command == "quantize":
            from compile.quantize import DEFAULT_SAMPLES, quantize_package

            samples = args.samples or DEFAULT_SAMPLES
            for name, int8 in quantize_package(package, args.calibration, samples).items():
                log.info("%s: %s (INT8 vs fp32 PSNR %.2f dB)", name, int8.file, int8.psnr_db)
            return 0
        if args.command == "tensorrt":
            from compile.tensorrt_build import build_engines, profile_shapes

            profile = profile_shapes(
                args.max_batch, args.opt_batch, args.min_size, args.opt_size, args.max_size
            )
            build_engines(package, profile, int(args.workspace_gib * (1 << 30)), args.skip_existing)
            return 0
        if args.command == "benchmark":
            from compile.benchmark import run

            run(package.path, args.quick, args.out, args.figures, args.calibration)
            return 0
        if args.command == "rate":
            from compile.rate import raw_rate

            figure = raw_rate(package, args.direction, args.batch, args.seconds, args.size)
            print(json.dumps(figure))  # the figure is the command's output
            return 0
        if args.command == "operators":
            from compile.operators import profile_package, table

            profiles = profile_package(package, args.resolution, args.runs, args.threads)
            print("\n".join(table(profiles)))  # the table is the command's output
            return 0
        from compile.verify import format_table, verify_package

        rows = verify_package(package, args.resolution, tuple(args.batches), args.repeats)
        print(format_table(rows, tuple(args.batches)))  # the table is the command's output
        failed = [r for r in rows if not r.passed]
        for row in failed:
            log.error(
                "%s %s %s is outside its tolerance (%s)",
                row.direction,
                row.backend,
                row.precision,
                row.note,
            )
        return 1 if failed else 0
    # QuantizeError and ExportError are RuntimeErrors: refused with their figure, exit code 2
    except (PackageError, BackendUnavailable, FileNotFoundError, ValueError, RuntimeError) as error:
        log.error("%s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
