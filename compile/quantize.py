"""Static INT8 graphs for the CPU: `python -m compile quantize --package PKG [--calibration DIR]`.

For each direction, ONNX Runtime's quantization tools turn the fp32 graph into a QDQ graph:
int8 per-channel weights and uint8 activations for the convolutions of the encoder and the
residual blocks (about three quarters of the arithmetic). The upsampling path stays fp32, as do
InstanceNorm, Add and Tanh: quantizing the convolutions after the upsampling steps too costs
about 8 dB of PSNR against fp32 on a resize-convolution generator (24.8 against 33.2 dB).
Activation ranges are percentiles of the calibration images' activations, not their min/max,
so that a few extreme activations do not stretch the int8 grid (32.4 against 28.4 dB).

Weights use 7 of their 8 bits (`reduce_range`). On an x86 CPU without VNNI, ONNX Runtime
multiplies uint8 activations by int8 weights with an instruction (vpmaddubsw) whose 16-bit
sums saturate with 8-bit weights; 7-bit weights keep them in range, so the graph computes the
same on every CPU and a gate passed on one machine holds on another.

What it calibrates on is the caller's choice. `--calibration DIR`: each direction's source
domain's training images (DIR/trainA for A->B, DIR/trainB for B->A), and its test images for
the gate. Without it: the package's own example photo of each direction
(`python -m training example`), one image for both, which checks the graph on a real photo but
is a narrower gate than a data set's.

Quality gate: PSNR against the fp32 graph, pooled over the gate's images, must be >= 30 dB. A
direction below it is refused with the figure and nothing is written. Passing graphs go to
PKG/onnx/<direction>.int8.onnx and into model.json (hash, the fp32 graph's hash, PSNR, what it
was calibrated on), all directions at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from PIL import Image, UnidentifiedImageError

from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend
from cyclegan.imaging import image_to_array, psnr_db, served_resolution
from cyclegan.onnx_names import INPUT_NAME
from cyclegan.package import Int8Info, ModelPackage, OnnxInfo, sha256_file

log = logging.getLogger(__name__)

MIN_PSNR_DB = 30.0
DEFAULT_SAMPLES = 64
OP_TYPES = ["Conv"]  # ConvTranspose upsamples: it stays fp32
UPSAMPLING = {"Resize", "Upsample", "ConvTranspose"}
PASS_THROUGH = {"Pad", "Identity", "Cast"}  # between an upsampling step and its convolution


class QuantizeError(RuntimeError):
    """A graph below its quality gate; the message gives the measured figure."""


class ImageReader(CalibrationDataReader):
    """Hands ONNX Runtime's calibrator one (1, 3, H, W) image at a time."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._images = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {INPUT_NAME: image[None]}


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs each step on the root logger and prints its ranges; the
    gate below is the check that matters, so keep the command's output to our own lines."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def upsampling_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the convolutions that read an upsampled tensor (through Pad at most)."""
    producer = {output: node for node in model.graph.node for output in node.output}
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        source = producer.get(node.input[0])
        while source is not None and source.op_type in PASS_THROUGH:
            source = producer.get(source.input[0])
        if source is not None and source.op_type in UPSAMPLING:
            names.append(node.name)
    return names


def weight_bits(graph: Path) -> int:
    """7 if every int8 weight of the graph lies within +-64 (reduce_range), else 8."""
    model = onnx.load(graph)
    weights = [
        numpy_helper.to_array(t).astype(np.int16)
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    return 7 if all(int(np.abs(w).max(initial=0)) <= 64 for w in weights) else 8


def read_image(path: Path, size: int) -> np.ndarray:
    """An image file as a (3, size, size) array, resized (not cropped) bicubically."""
    with Image.open(path) as image:
        return image_to_array(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))


def load_images(folder: Path, size: int, limit: int | None) -> tuple[list[np.ndarray], str]:
    """(the first `limit` images in name order, resized to size x size, sha256 of their bytes)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (quantize needs trainA/B and testA/B)")
    images, digest = [], hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        if limit is not None and len(images) == limit:
            break
        try:
            images.append(read_image(file, size))
        except (UnidentifiedImageError, OSError):
            log.warning("%s: not an image Pillow reads; skipped", file)
            continue
        digest.update(file.read_bytes())
    if not images:
        raise FileNotFoundError(f"{folder}: no images")
    return images, digest.hexdigest()


@dataclass(frozen=True)
class GateImages:
    """What one direction is calibrated on, and what its gate measures on."""

    calibration: list[np.ndarray]
    calibration_sha256: str
    calibration_data: str  # as model.json names them
    tests: list[np.ndarray]


def data_set_images(
    data: Path, side: str, size: int, samples: int, test_images: int | None
) -> GateImages:
    """DATA/train<side> to calibrate on, DATA/test<side> for the gate."""
    calibration, digest = load_images(data / f"train{side}", size, samples)
    tests, _ = load_images(data / f"test{side}", size, test_images)
    return GateImages(calibration, digest, f"{data.name}/train{side}", tests)


def example_images(package: ModelPackage, direction: str, size: int) -> GateImages:
    """The direction's example photo (stored in the package), for calibration and gate alike."""
    example = package.direction(direction).example
    if example is None:
        raise FileNotFoundError(
            f"{direction} has no example photo to calibrate on: pass --calibration DIR (a data "
            f"set with trainA/B and testA/B), or store examples first with python -m training "
            f"example --package {package.path}"
        )
    path = package.path / example.input.file
    photo = read_image(path, size)
    return GateImages([photo], sha256_file(path), example.input.file, [photo])


def fp32_graph(package: ModelPackage, direction: str) -> OnnxInfo:
    """The record of the direction's fp32 ONNX graph; FileNotFoundError when it has none yet."""
    graph = package.direction(direction).onnx
    if graph is None:
        raise FileNotFoundError(
            f"{direction} has no ONNX graph yet: run python -m compile onnx "
            f"--package {package.path}"
        )
    return graph


def quantize_direction(
    package: ModelPackage, direction: str, graph: OnnxInfo, images: GateImages, staging: Path
) -> Int8Info:
    """Quantize one direction into `staging`, check it; raise QuantizeError below the gate."""
    fp32_path = package.path / graph.file
    prepared, target = staging / f"{direction}.pre.onnx", staging / f"{direction}.int8.onnx"
    # shape inference and graph fusions first, as ONNX Runtime's quantization guide asks
    with quiet_quantizer():
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared, target, ImageReader(images.calibration),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=OP_TYPES, per_channel=True,
            nodes_to_exclude=upsampling_convs(onnx.load(prepared)),
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
            calibrate_method=CalibrationMethod.Percentile,
        )  # fmt: skip
    prepared.unlink()

    tests = images.tests
    fp32, int8 = OnnxRuntimeBackend(fp32_path), OnnxRuntimeBackend(target)
    reference = np.concatenate([fp32.translate(x[None]) for x in tests])
    quantized = np.concatenate([int8.translate(x[None]) for x in tests])
    psnr = psnr_db(reference, quantized)
    size = tests[0].shape[-1]
    log.info(
        "%s: INT8 vs fp32 PSNR %.2f dB on %d test images at %dx%d (gate %.0f dB); "
        "calibrated on %d images of %s",
        direction, psnr, len(tests), size, size, MIN_PSNR_DB, len(images.calibration),
        images.calibration_data,
    )  # fmt: skip
    if not psnr >= MIN_PSNR_DB:
        raise QuantizeError(
            f"{direction}: the INT8 graph measures {psnr:.2f} dB PSNR against fp32 on "
            f"{len(tests)} test images, below the {MIN_PSNR_DB:.0f} dB gate; nothing was written"
        )
    return Int8Info(
        file=f"onnx/{direction}.int8.onnx",
        sha256=sha256_file(target),
        source_sha256=graph.sha256,
        psnr_db=round(psnr, 2),
        min_psnr_db=MIN_PSNR_DB,
        test_images=len(tests),
        calibration_data=images.calibration_data,
        calibration_images=len(images.calibration),
        calibration_sha256=images.calibration_sha256,
        weight_bits=weight_bits(target),
    )


def gate_images(
    package: ModelPackage,
    direction: str,
    data: Path | None,
    samples: int,
    test_images: int | None,
) -> GateImages:
    """The direction's images from DATA when given, else its example photo."""
    spec = package.direction(direction)
    size = served_resolution(spec.native_resolution)
    if data is None:
        return example_images(package, direction, size)
    side = "A" if spec.source == package.manifest.domains[0] else "B"
    return data_set_images(data, side, size, samples, test_images)


def quantize_package(
    package: ModelPackage,
    data: Path | None = None,
    samples: int = DEFAULT_SAMPLES,
    test_images: int | None = None,
) -> dict[str, Int8Info]:
    """Quantize every direction; write the graphs and model.json only if all pass the gate.

    `data`: a data set folder to calibrate and gate on; None: each direction's example photo.
    """
    if samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}")
    names = list(package.manifest.directions)
    graphs = {name: fp32_graph(package, name) for name in names}
    if data is None:
        log.info("no --calibration DIR: calibrating and gating on the package's example photos")
    images = {name: gate_images(package, name, data, samples, test_images) for name in names}
    onnx_dir = package.path / "onnx"
    onnx_dir.mkdir(exist_ok=True)
    # staged beside the final files (same file system), so that moving them in is atomic
    with tempfile.TemporaryDirectory(dir=onnx_dir, prefix=".int8-") as tmp:
        results = {
            name: quantize_direction(package, name, graphs[name], images[name], Path(tmp))
            for name in names
        }
        for name, info in results.items():
            os.chmod(Path(tmp) / f"{name}.int8.onnx", 0o644)  # packages are read by other users
            os.replace(Path(tmp) / f"{name}.int8.onnx", package.path / info.file)
            graphs[name].int8 = info  # the manifest's own record
    package.save_manifest()
    return results
