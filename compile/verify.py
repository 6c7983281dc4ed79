"""Run every backend this machine has on the same inputs and compare with PyTorch fp32.

Prints one row per backend: device, precision, max abs error and PSNR against the PyTorch fp32
reference, images per second at batch 1 and 8. fp32 backends must be within 1e-4 (max abs),
fp16 ones at or above 35 dB PSNR, the INT8 graph (`compile quantize`) at or above 30 dB
(its row says so where `auto` would not serve it: 8-bit weights on a CPU without VNNI);
`verify_package` reports which rows fail. Inputs are square at
the side the service runs the package at (its native resolution rounded down to a multiple of
4), so what is verified is what is served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compile.timing import rate
from cyclegan.backends import Backend, BackendUnavailable, cuda_available
from cyclegan.generator_config import SIZE_MULTIPLE
from cyclegan.imaging import psnr_db, served_resolution
from cyclegan.package import ModelPackage

log = logging.getLogger(__name__)

FP32_MAX_ABS = 1e-4
FP16_MIN_PSNR_DB = 35.0
INT8_MIN_PSNR_DB = 30.0  # quantize's gate (on real test images; here on the inputs below)


@dataclass
class Row:
    direction: str
    resolution: int  # square inputs of this side
    backend: str
    device: str
    precision: str
    max_abs_error: float | None = None
    psnr_db: float | None = None
    images_per_second: dict[int, float] | None = None
    passed: bool = True
    note: str = ""


def candidates(package: ModelPackage, direction: str) -> list[tuple[str, Callable[[], Backend]]]:
    """(label, factory) for every backend worth trying; factories may raise BackendUnavailable."""
    from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend, graph_file
    from cyclegan.backends.tensorrt_runtime import TensorRTBackend
    from cyclegan.backends.torch_runtime import TorchBackend

    def onnx_file(precision: str, use_cuda: bool) -> Callable[[], Backend]:
        def make() -> Backend:
            return OnnxRuntimeBackend(graph_file(package, direction, precision), use_cuda)

        return make

    rows: list[tuple[str, Callable[[], Backend]]] = [
        ("onnxruntime cpu fp32", onnx_file("fp32", False)),
        ("onnxruntime cpu fp16-graph", onnx_file("fp16", False)),
        ("onnxruntime cpu int8", onnx_file("int8", False)),
    ]
    if cuda_available():
        rows += [
            ("torch cuda fp16", lambda: TorchBackend.from_package(package, direction, "cuda")),
            ("onnxruntime cuda fp16-graph", onnx_file("fp16", True)),
        ]
    rows.append(("tensorrt", lambda: TensorRTBackend.from_package(package, direction)))
    return rows


def throughput(backend: Backend, sample: np.ndarray, batch: int, repeats: int) -> float:
    x = np.repeat(sample[:1], batch, axis=0)
    return rate(lambda: backend.translate(x), batch, 0.0, min_calls=repeats)


def verify_direction(
    package: ModelPackage, direction: str, resolution: int, batches: tuple[int, ...], repeats: int
) -> list[Row]:
    from cyclegan.backends.onnx_runtime import saturates
    from cyclegan.backends.torch_runtime import TorchBackend

    inputs = (
        np.random.default_rng(0).uniform(-1, 1, (4, 3, resolution, resolution)).astype(np.float32)
    )
    reference_backend = TorchBackend.from_package(package, direction, "cpu")
    reference = reference_backend.translate(inputs)
    speed = {b: throughput(reference_backend, inputs, b, repeats) for b in batches}
    reference_row = Row(direction, resolution, "torch", "cpu", "fp32", 0.0, float("inf"), speed)
    reference_row.note = "reference"
    rows = [reference_row]
    for label, make in candidates(package, direction):
        try:
            backend = make()
        except (BackendUnavailable, FileNotFoundError) as reason:
            rows.append(Row(direction, resolution, label, "-", "-", note=f"skipped: {reason}"))
            continue
        output = backend.translate(inputs)
        row = Row(direction, resolution, backend.name, backend.device, backend.precision)
        if "fp16-graph" in label:
            row.precision = "fp16"
        row.max_abs_error = float(np.abs(output - reference).max())
        row.psnr_db = psnr_db(reference, output)
        row.images_per_second = {b: throughput(backend, inputs, b, repeats) for b in batches}
        if row.precision == "fp32":
            row.passed = row.max_abs_error <= FP32_MAX_ABS
            row.note = f"max abs <= {FP32_MAX_ABS:.0e}"
        else:
            least = INT8_MIN_PSNR_DB if row.precision == "int8" else FP16_MIN_PSNR_DB
            row.passed = row.psnr_db >= least
            row.note = f"PSNR >= {least:.0f} dB"
            onnx = package.direction(direction).onnx
            if row.precision == "int8" and onnx is not None and saturates(onnx.int8):
                row.note += "; 8-bit weights on a CPU without VNNI: auto serves fp32 here"
        rows.append(row)
    return rows


def format_table(rows: list[Row], batches: tuple[int, ...]) -> str:
    header = ["direction", "size", "backend", "device", "precision", "max abs err", "PSNR dB"]
    header += [f"img/s b{b}" for b in batches] + ["check"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        speed = r.images_per_second or {}
        cells = [
            r.direction, f"{r.resolution}x{r.resolution}", r.backend, r.device, r.precision,
            "-" if r.max_abs_error is None else f"{r.max_abs_error:.2e}",
            "-" if r.psnr_db is None else f"{r.psnr_db:.1f}",
            *[f"{speed[b]:.2f}" if b in speed else "-" for b in batches],
            ("ok" if r.passed else "FAIL") + (f" ({r.note})" if r.note else ""),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verify_package(
    package: ModelPackage,
    resolution: int | None = None,
    batches: tuple[int, ...] = (1, 8),
    repeats: int = 3,
) -> list[Row]:
    """Verify every direction at `resolution`, or at the side the service runs it at."""
    if resolution is not None and (resolution < SIZE_MULTIPLE or resolution % SIZE_MULTIPLE):
        raise ValueError(f"--resolution {resolution} must be a multiple of {SIZE_MULTIPLE}")
    rows: list[Row] = []
    for name, direction in package.manifest.directions.items():
        size = resolution or served_resolution(direction.native_resolution)
        rows += verify_direction(package, name, size, batches, repeats)
    return rows
