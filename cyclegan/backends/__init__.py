"""Runtime backends: one small interface over ONNX Runtime, PyTorch and TensorRT.

Every backend (the interface is in `base.py`) translates a batch (N, 3, H, W) float32 in
[-1, 1] (numpy) into the same shape, and says what it is (`name`, `device`, `precision`).
Heavy imports (onnxruntime, tensorrt, CUDA) happen inside each backend, so this package
imports on any machine.
`create_backend("auto", ...)` picks the fastest one the machine and the package allow.
"""

from __future__ import annotations

import logging
from typing import get_args

from cyclegan.backends.base import (
    Backend,
    BackendName,
    BackendUnavailable,
    DeviceName,
    PrecisionName,
)
from cyclegan.package import ModelPackage

__all__ = [
    "Backend",
    "BackendName",
    "BackendUnavailable",
    "DeviceName",
    "PrecisionName",
    "create_backend",
    "cuda_available",
    "tensorrt_available",
]

log = logging.getLogger(__name__)


def cuda_available() -> bool:
    try:  # a CPU image may ship without torch at all
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return cuda_available()


def create_backend(
    kind: BackendName,
    package: ModelPackage,
    direction: str,
    device: DeviceName = "auto",
    threads: int | None = None,
    precision: PrecisionName = "auto",
    spin: bool = True,
) -> Backend:
    """The backend `kind` for one direction of `package`; "auto" picks the fastest available.

    `spin=False` lets ONNX Runtime's idle worker threads sleep rather than spin (its default).

    auto: TensorRT with a matching plan on a GPU; else PyTorch FP16 on a GPU; else ONNX
    Runtime on the CPU when the package has an ONNX graph (its INT8 graph where there is one,
    at precision auto or int8); else PyTorch on the CPU. INT8 runs only in ONNX Runtime on
    the CPU; a precision a backend cannot run raises BackendUnavailable saying why.
    """
    package.direction(direction)  # a clear error for an unknown direction, before any work
    if precision not in get_args(PrecisionName):
        raise ValueError(f"unknown precision {precision!r} (choose auto, fp32, fp16 or int8)")
    use_cuda = device == "cuda" or (device == "auto" and cuda_available())
    if device == "cuda" and not cuda_available():
        raise BackendUnavailable("device cuda was asked for, but PyTorch sees no CUDA device")
    if precision == "int8":
        if device == "cuda" or kind not in ("auto", "onnxruntime"):
            raise BackendUnavailable(
                f"precision int8 runs only in ONNX Runtime on the CPU (asked: backend {kind}, "
                f"device {device}); use backend onnxruntime or auto with device cpu or auto"
            )
        use_cuda = False  # the INT8 graph is a CPU graph, even where a GPU is present
    if kind == "auto":
        return _auto(package, direction, use_cuda, threads, precision, spin)
    if kind == "onnxruntime":
        from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_package(
            package, direction, use_cuda, threads, precision, spin
        )
    if kind == "torch":
        from cyclegan.backends.torch_runtime import TorchBackend

        torch_device = "cuda" if use_cuda else "cpu"
        return TorchBackend.from_package(package, direction, torch_device, threads, precision)
    if kind == "tensorrt":
        from cyclegan.backends.tensorrt_runtime import TensorRTBackend

        if precision not in ("auto", "fp16"):
            raise BackendUnavailable(f"TensorRT plans here are fp16; precision {precision} is not")
        return TensorRTBackend.from_package(package, direction)
    raise ValueError(f"unknown backend {kind!r} (choose auto, onnxruntime, torch or tensorrt)")


def _auto(
    package: ModelPackage,
    direction: str,
    use_cuda: bool,
    threads: int | None,
    precision: PrecisionName,
    spin: bool,
) -> Backend:
    # each import only where it is used: a CPU image may have ONNX Runtime and no torch
    if use_cuda:
        if precision in ("auto", "fp16") and tensorrt_available():
            from cyclegan.backends.tensorrt_runtime import TensorRTBackend

            try:
                return TensorRTBackend.from_package(package, direction)
            except (BackendUnavailable, FileNotFoundError) as reason:
                log.warning("not using TensorRT for %s: %s", direction, reason)
        from cyclegan.backends.torch_runtime import TorchBackend

        return TorchBackend.from_package(package, direction, "cuda", threads, precision)
    if package.direction(direction).onnx is not None or precision == "int8":
        from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_package(package, direction, False, threads, precision, spin)
    log.info("%s has no ONNX graph (run python -m compile onnx): using PyTorch", direction)
    from cyclegan.backends.torch_runtime import TorchBackend

    return TorchBackend.from_package(package, direction, "cpu", threads, precision)
