"""`python -m compile benchmark`: the runtimes in-process, without the service.

For the default model and a ResNet-9 (random weights) at 256x256: images/s of every backend
this machine has (ONNX Runtime fp32 and INT8, PyTorch; CUDA where present) at batch 1, 4, 8
and 16, the rows of one model and batch timed interleaved (`compile.timing.rates`) so that
they compare fairly on a CPU whose speed drifts, and the achieved GFLOP/s against a 1024x1024
fp32 matmul timed in the same run. Writes its section of BENCHMARKS.md (other sections stay as
they are) and the default model's figures as JSON: the service benchmark (`python -m
loadtest.benchmark`) divides the service's throughput by them. The default model's copy is
quantized here (`compile quantize`, calibrated on `--calibration DIR`) unless it has INT8
graphs already. `--quick` runs on tiny sizes (the test suite does, so this code cannot rot).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from compile.onnx_export import export_onnx_graphs
from compile.quantize import QuantizeError, quantize_package
from compile.timing import rate, rates
from cyclegan.backends import (
    Backend,
    BackendName,
    BackendUnavailable,
    DeviceName,
    PrecisionName,
    create_backend,
    cuda_available,
)
from cyclegan.benchmarks_file import machine, write_section
from cyclegan.generator import GeneratorConfig, build_generator, count_macs, init_weights
from cyclegan.package import Int8Info, ModelPackage, load_package, write_package

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "horse2zebra"
HEADING = "## 1. Runtimes"
# (backend, device, precision) rows; a row the package or machine cannot run is left out
Setting = tuple[BackendName, DeviceName, PrecisionName]
CPU_ROWS: tuple[Setting, ...] = (
    ("onnxruntime", "cpu", "fp32"),
    ("onnxruntime", "cpu", "int8"),
    ("torch", "cpu", "fp32"),
)
CUDA_ROWS: tuple[Setting, ...] = (("onnxruntime", "cuda", "fp16"), ("torch", "cuda", "fp16"))


@dataclass(frozen=True)
class Plan:
    size: int
    batches: tuple[int, ...]
    seconds: float  # per row and batch, split into `rounds` interleaved windows
    rounds: int
    big_config: GeneratorConfig  # the "resnet9" rows (tiny in quick mode)
    calibration_images: int  # per direction, for the default model's INT8 graph
    gate_images: int  # test images per direction for its quality gate


FULL = Plan(256, (1, 4, 8, 16), 8.0, 4, GeneratorConfig(ngf=64, n_blocks=9), 64, 32)
QUICK = Plan(64, (1, 2), 0.5, 2, GeneratorConfig(ngf=8, n_blocks=2), 4, 4)


@dataclass
class Row:
    model: str
    gmac: float  # per image at the plan's size
    label: str  # "onnxruntime cpu fp32"
    images_per_second: dict[int, float]


def matmul_gflops(seconds: float) -> float:
    """fp32 GFLOP/s of a 1024x1024 matmul with every thread: the practical compute ceiling."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return rate(lambda: a @ b, 1, seconds) * 2 * 1024**3 / 1e9


def random_package(folder: Path, config: GeneratorConfig, native: int) -> ModelPackage:
    torch.manual_seed(0)
    nets = {}
    for key in ("ab", "ba"):
        net = build_generator(config)
        init_weights(net)
        nets[key] = (net, config)
    return write_package(
        folder, name="bench", version="random", domains=("a", "b"), generators=nets,
        native_resolution=native,
    )  # fmt: skip


def private_copy(model: Path, folder: Path) -> ModelPackage:
    """A copy of `model` with ONNX graphs, so that the benchmark never writes to the original."""
    shutil.copytree(model, folder)
    package = load_package(folder)
    if any(d.onnx is None for d in package.manifest.directions.values()):
        export_onnx_graphs(package)
    return load_package(folder)


def backends(package: ModelPackage, direction: str) -> dict[str, Backend]:
    """Every backend this machine can run for `direction`, by "name device precision"."""
    found: dict[str, Backend] = {}
    for kind, device, precision in CPU_ROWS + (CUDA_ROWS if cuda_available() else ()):
        try:
            backend = create_backend(kind, package, direction, device, precision=precision)
        except BackendUnavailable as reason:
            log.info("skip %s %s %s: %s", kind, device, precision, reason)
            continue
        found[f"{backend.name} {backend.device} {backend.precision}"] = backend
    return found


def measure(model: str, package: ModelPackage, plan: Plan) -> list[Row]:
    """One row per backend; the rows of each batch size timed interleaved."""
    direction = next(iter(package.manifest.directions))
    gmac = count_macs(package.direction(direction).generator, plan.size, plan.size) / 1e9
    found = backends(package, direction)
    rows = [Row(model, gmac, label, {}) for label in found]
    for batch in plan.batches:
        x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, plan.size, plan.size))
        x = x.astype(np.float32)
        runs = {label: partial(backend.translate, x) for label, backend in found.items()}
        timed = rates(runs, batch, plan.seconds * len(runs), rounds=plan.rounds)
        for row in rows:
            row.images_per_second[batch] = timed[row.label]
        log.info("%s batch %d: %s", model, batch, {k: round(v, 2) for k, v in timed.items()})
    return rows


def table(rows: list[Row], batches: tuple[int, ...], peak: float) -> list[str]:
    lines = [
        "| model | GMAC/img | backend | " + " | ".join(f"b{b} img/s" for b in batches)
        + " | best GFLOP/s | of matmul peak |",
        "|---|---|---|" + "---|" * len(batches) + "---|---|",
    ]  # fmt: skip
    for row in rows:
        speeds = [row.images_per_second[b] for b in batches]
        best = max(speeds) * 2 * row.gmac
        lines.append(
            f"| {row.model} | {row.gmac:.2f} | {row.label} | "
            + " | ".join(f"{s:.2f}" for s in speeds)
            + f" | {best:.1f} | {best / peak:.0%} |"
        )
    return lines


def findings(rows: list[Row]) -> list[str]:
    """Statements read off the figures (nothing here is written in advance)."""
    lines = []
    for row in rows:
        speeds = row.images_per_second
        first, best = min(speeds), max(speeds, key=lambda b: speeds[b])
        if best == first:
            lines.append(
                f"- {row.model}, {row.label}: batch {first} is the fastest per image "
                f"(larger batches: {min(speeds.values()) / speeds[first]:.2f}x its images/s "
                "at worst)."
            )
        else:
            lines.append(
                f"- {row.model}, {row.label}: batch {best} gives "
                f"{speeds[best] / speeds[first]:.2f}x batch {first}'s images/s."
            )
    by_label = {(r.model, r.label): r.images_per_second for r in rows}
    for model in dict.fromkeys(r.model for r in rows):
        fp32, int8 = (
            by_label.get((model, "onnxruntime cpu fp32")),
            by_label.get((model, "onnxruntime cpu int8")),
        )
        if fp32 and int8:
            ratios = ", ".join(f"{int8[b] / fp32[b]:.2f}x at batch {b}" for b in fp32)
            lines.append(f"- {model}: INT8 / fp32 images/s in ONNX Runtime on the CPU: {ratios}.")
    if not cuda_available():
        lines.append("- No CUDA device in this run: every row is on the CPU.")
    return lines


def with_int8(package: ModelPackage, calibration: Path | None, plan: Plan) -> str:
    """Quantize the package unless it has INT8 graphs; say what its graphs measured."""

    def graphs() -> list[Int8Info]:
        onnx = [d.onnx for d in package.manifest.directions.values()]
        return [o.int8 for o in onnx if o is not None and o.int8 is not None]

    if len(graphs()) < len(package.manifest.directions):
        try:  # quantize_package records the graphs in package.manifest
            quantize_package(package, calibration, plan.calibration_images, plan.gate_images)
        except QuantizeError as refused:
            return f"No INT8 rows: {refused}."
    described = [
        f"{g.file} measured {g.psnr_db:.1f} dB PSNR against fp32 on {g.test_images} test "
        f"images (calibrated on {g.calibration_images} of {g.calibration_data})"
        for g in graphs()
    ]
    return "INT8 graphs: " + "; ".join(described) + "."


def run(
    model: Path,
    quick: bool,
    out: Path,
    figures: Path | None,
    calibration: Path | None = None,
) -> None:
    plan = QUICK if quick else FULL
    started = time.time()
    load = os.getloadavg()[0]  # reported: other jobs on this machine slow the figures
    # the ceiling: the faster of a timing before anything else runs and one after the rows
    peak = matmul_gflops(plan.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        default = private_copy(model, Path(tmp) / "default")
        int8_note = with_int8(default, calibration, plan)
        default = load_package(default.path)
        big = random_package(Path(tmp) / "resnet9", plan.big_config, plan.size)
        export_onnx_graphs(big)
        big = load_package(big.path)
        rows = measure("default", default, plan) + measure("resnet9", big, plan)
    peak = max(peak, matmul_gflops(plan.seconds))
    log.info("fp32 matmul peak: %.1f GFLOP/s", peak)
    config = plan.big_config
    host = machine(load, ["torch", "onnxruntime"])
    now = datetime.datetime.now(datetime.UTC)
    lines = [
        f"{HEADING} ({plan.size}x{plan.size})", "",
        f"Written by `python -m compile benchmark{' --quick' if quick else ''}` on "
        f"{now:%Y-%m-%d %H:%M} UTC in {time.time() - started:.0f} s. Machine: {host}.", "",
        f"default = {default.name} {default.manifest.version}; resnet9 = ResNet ngf {config.ngf} x "
        f"{config.n_blocks} blocks (random weights). The rows of one model are timed interleaved, "
        f"{plan.seconds:g} s each per batch size. fp32 matmul rate measured in this run (the "
        f"faster of a timing before the rows and one after): **{peak:.1f} GFLOP/s** (1024x1024, "
        "all threads); the last column divides the best rate by it (for INT8 rows: the same "
        "operations, done in int8).", "",
        int8_note, "",
        *table(rows, plan.batches, peak), "",
        *findings(rows), "",
    ]  # fmt: skip
    write_section(out, HEADING, lines)
    log.info("wrote %s to %s", HEADING, out)
    if figures is not None:
        default_rows = {r.label: r.images_per_second for r in rows if r.model == "default"}
        figures.parent.mkdir(parents=True, exist_ok=True)
        figures.write_text(
            json.dumps(
                {
                    "model": default.name, "version": default.manifest.version,
                    "size": plan.size, "measured_at": now.isoformat(timespec="seconds"),
                    "images_per_second": default_rows,
                },
                indent=2,
            )
        )  # fmt: skip
        log.info("wrote %s", figures)
