"""Export each generator of a package to ONNX, check it, and record it in model.json.

Writes PKG/onnx/<direction>.onnx (fp32; dynamic batch, height and width; opset pinned) and
PKG/onnx/<direction>.fp16.onnx (fp16 weights and compute, fp32 inputs and outputs; the graph
TensorRT 11 builds FP16 engines from). The fp32 graph must match the PyTorch generator to
1e-4 (max abs) on random inputs at two shapes, or the export fails.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend
from cyclegan.imaging import psnr_db
from cyclegan.onnx_names import INPUT_NAME, OUTPUT_NAME
from cyclegan.package import FileRef, ModelPackage, OnnxInfo, sha256_file

log = logging.getLogger(__name__)

OPSET = 17
FP32_TOLERANCE = 1e-4  # max abs error vs PyTorch, on outputs in [-1, 1]
# Two shapes: one square at batch 1, one non-square at batch > 1.
CHECK_SHAPES = ((1, 3, 64, 64), (3, 3, 48, 80))


class ExportError(RuntimeError):
    """An export that failed a check; the message gives the measured figure."""


def export_onnx(net: torch.nn.Module, path: Path) -> onnx.ModelProto:
    """Trace `net` to a self-contained ONNX file with dynamic batch/height/width."""
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated and that InstanceNorm has no
        # running stats (true: the generator normalises with per-image statistics).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), torch.zeros(1, 3, 64, 64), buffer,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=OPSET,
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic}, dynamo=False,
        )  # fmt: skip
    model = onnx.load_from_string(buffer.getvalue())
    model = simplify(model)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return model


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim folds the exporter's shape arithmetic (about 4x fewer nodes); keep the
    original if it fails, since simplification is an optimisation, not a requirement."""
    import onnxslim

    try:
        slim = onnxslim.slim(model)
    except Exception as error:  # onnxslim raises many kinds; none should stop the export
        log.warning("onnxslim failed (%s); keeping the unsimplified graph", error)
        return model
    log.info("onnxslim: %d -> %d nodes", len(model.graph.node), len(slim.graph.node))
    return slim


def convert_fp16(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """fp16 weights and compute with fp32 input and output (keep_io_types)."""
    from onnxconverter_common import float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about values clipped to the fp16 range
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.checker.check_model(converted, full_check=True)
    onnx.save(converted, path)
    return converted


def random_inputs(seed: int = 0) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.uniform(-1, 1, shape).astype(np.float32) for shape in CHECK_SHAPES]


def max_abs_error(
    net: torch.nn.Module, backend: OnnxRuntimeBackend, inputs: list[np.ndarray]
) -> float:
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(backend.translate(x) - expected).max()))
    return worst


def export_direction(package: ModelPackage, direction: str, seed: int = 0) -> OnnxInfo:
    """Export, verify and describe one direction's graphs (model.json is not written here)."""
    net = package.load_generator(direction)
    folder = package.path / "onnx"
    fp32_path, fp16_path = folder / f"{direction}.onnx", folder / f"{direction}.fp16.onnx"
    model = export_onnx(net, fp32_path)
    inputs = random_inputs(seed)
    fp32_backend = OnnxRuntimeBackend(fp32_path)
    error = max_abs_error(net, fp32_backend, inputs)
    log.info(
        "%s: fp32 ONNX vs PyTorch max abs error %.2e (limit %.0e)", direction, error, FP32_TOLERANCE
    )
    if not error <= FP32_TOLERANCE:
        raise ExportError(
            f"{direction}: ONNX Runtime differs from PyTorch by {error:.3e} (max abs), "
            f"more than {FP32_TOLERANCE:.0e}; the export is wrong, not saved to model.json"
        )
    convert_fp16(model, fp16_path)
    fp16_backend = OnnxRuntimeBackend(fp16_path)
    fp16_psnr = min(psnr_db(fp32_backend.translate(x), fp16_backend.translate(x)) for x in inputs)
    log.info(
        "%s: fp16 ONNX vs fp32 PSNR %.1f dB (worst of %d inputs)", direction, fp16_psnr, len(inputs)
    )
    return OnnxInfo(
        file=str(fp32_path.relative_to(package.path)),
        sha256=sha256_file(fp32_path),
        opset=OPSET,
        max_abs_error=error,
        fp16=FileRef(file=str(fp16_path.relative_to(package.path)), sha256=sha256_file(fp16_path)),
        fp16_psnr_db=round(fp16_psnr, 2),
    )


def export_onnx_graphs(package: ModelPackage) -> dict[str, OnnxInfo]:
    """Export every direction, then record all of them in model.json at once.

    An INT8 graph quantized from the previous fp32 graph no longer matches: it is removed.
    """
    results = {name: export_direction(package, name) for name in package.manifest.directions}
    for name, info in results.items():
        old = package.manifest.directions[name].onnx
        if old is not None and old.int8 is not None:
            (package.path / old.int8.file).unlink(missing_ok=True)
            log.warning("%s: removed the INT8 graph of the old export; run compile quantize", name)
        package.manifest.directions[name].onnx = info
    package.save_manifest()
    return results
