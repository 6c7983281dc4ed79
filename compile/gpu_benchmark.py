"""Check and time the CUDA backends: `python -m compile.gpu_benchmark [--package PKG]`.

For the first direction of a package (default: a ResNet-9, ngf 64 and 9 blocks, random
weights) at 256x256, with the backend classes the service runs: PyTorch fp16 on CUDA, ONNX
Runtime with the CUDA provider (the fp16 graph) and TensorRT (an FP16 plan built here, where
TensorRT is installed), each against PyTorch fp32 on the CPU (the reference, also timed):
PSNR and images/s at batch 1, 8 and 16. `translate` includes the copies between host and
device, as in the service; the rows of one batch size are timed interleaved
(`compile.timing.rates`, synchronised after each call). Writes its section of BENCHMARKS.md
(`--out`) and the figures as JSON (`--json`). Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from compile.benchmark import private_copy, random_package
from compile.onnx_export import export_onnx_graphs
from compile.timing import rates
from cyclegan.backends import Backend, create_backend
from cyclegan.benchmarks_file import write_section
from cyclegan.generator import GeneratorConfig, count_macs
from cyclegan.imaging import psnr_db
from cyclegan.package import ModelPackage, load_package

log = logging.getLogger("compile.gpu_benchmark")
HEADING = "## 5. GPU"
BATCHES = (1, 8, 16)
SIZE = 256
SECONDS = 2.0  # per row and batch size


def tensorrt_backend(package: ModelPackage, direction: str) -> Backend:
    """Build an FP16 plan for exactly the shapes timed here, then load it like the service."""
    from compile.tensorrt_build import build_engines, profile_shapes

    profile = profile_shapes(max(BATCHES), 8, SIZE, SIZE, SIZE)
    build_engines(package, profile, workspace_bytes=4 << 30)
    return create_backend("tensorrt", package, direction, "cuda")


def candidates(package: ModelPackage, direction: str) -> dict[str, Callable[[], Backend]]:
    """The CUDA rows, by label; a factory that raises becomes a skipped row."""
    return {
        "torch cuda fp16": lambda: create_backend("torch", package, direction, "cuda"),
        "onnxruntime cuda fp16": lambda: create_backend("onnxruntime", package, direction, "cuda"),
        "tensorrt cuda fp16": lambda: tensorrt_backend(package, direction),
    }


@dataclass
class Row:
    backend: str
    psnr_db: float = float("inf")  # worst batch, against the CPU fp32 reference
    images_per_second: dict[int, float] = field(default_factory=dict)
    skipped: str = ""  # why the backend could not run here


def measure(package: ModelPackage, direction: str) -> list[Row]:
    """One row per backend: PSNR against the CPU fp32 reference and images/s per batch size."""
    reference = create_backend("torch", package, direction, "cpu")
    backends: dict[str, Backend] = {"torch cpu fp32 (reference)": reference}
    skipped: list[Row] = []
    for label, make in candidates(package, direction).items():
        try:
            backends[label] = make()
        except Exception as error:  # a missing provider or TensorRT: say so in the table
            log.warning("%s skipped: %s", label, error)
            skipped.append(Row(label, skipped=str(error)[:120]))
    x = np.random.default_rng(0).uniform(-1, 1, (max(BATCHES), 3, SIZE, SIZE)).astype(np.float32)
    rows = {label: Row(label) for label in backends}
    for batch in BATCHES:
        expected = reference.translate(x[:batch])
        for label, backend in backends.items():
            psnr = psnr_db(expected, backend.translate(x[:batch]))
            rows[label].psnr_db = min(rows[label].psnr_db, psnr)
        runs = {label: partial(b.translate, x[:batch]) for label, b in backends.items()}
        timed = rates(
            runs, batch, SECONDS * len(runs), rounds=2, synchronize=torch.cuda.synchronize
        )
        for label, speed in timed.items():
            rows[label].images_per_second[batch] = speed
        log.info("batch %d: %s", batch, {k: round(v, 1) for k, v in timed.items()})
    return [*rows.values(), *skipped]


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| backend | PSNR vs fp32 (dB, worst batch) | " + " | ".join(f"b{b} img/s" for b in BATCHES) + " |",
        "|---|---|" + "---|" * len(BATCHES),
    ]  # fmt: skip
    for row in rows:
        if row.skipped:
            lines.append(f"| {row.backend} | skipped: {row.skipped} |" + " - |" * len(BATCHES))
        else:
            cells = [f"{row.images_per_second[b]:.1f}" for b in BATCHES]
            lines.append(f"| {row.backend} | {row.psnr_db:.1f} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compile.gpu_benchmark", description=__doc__)
    parser.add_argument("--package", type=Path, help="benchmark this package's first direction")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not torch.cuda.is_available():
        log.error("needs a CUDA GPU; PyTorch sees none")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        # a private copy: the plan and graphs built here never land in the given package
        if args.package:
            package = private_copy(args.package, Path(tmp) / "package")
        else:
            package = random_package(Path(tmp) / "package", GeneratorConfig(), SIZE)
            export_onnx_graphs(package)
            package = load_package(package.path)
        direction = next(iter(package.manifest.directions))
        config = package.direction(direction).generator
        results = measure(package, direction)
    try:
        import tensorrt

        trt_version = f", TensorRT {tensorrt.__version__}"
    except ImportError:
        trt_version = ", no TensorRT"
    model = f"{package.name} {package.manifest.version} {direction}" if args.package else "random"
    now = datetime.datetime.now(datetime.UTC)
    lines = [
        HEADING, "",
        f"Written by `python -m compile.gpu_benchmark` on {now:%Y-%m-%d %H:%M} UTC. "
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
        f"{trt_version}. Generator: {model}, {config.arch} ngf {config.ngf} x {config.n_blocks} "
        f"blocks ({count_macs(config, SIZE, SIZE) / 1e9:.1f} GMAC at {SIZE}x{SIZE}); images/s "
        "include the host-device copies.", "",
        *table(results), "",
    ]  # fmt: skip
    for line in lines:
        log.info("%s", line)
    write_section(args.out, HEADING, lines)
    if args.json:
        figures = {"device": lines[2], "rows": [asdict(row) for row in results]}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
