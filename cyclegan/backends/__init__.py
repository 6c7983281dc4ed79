"""Runtime backends: one small interface over ONNX Runtime, PyTorch and TensorRT.

Every backend (the interface is in `base.py`) translates a batch (N, 3, H, W) float32 in
[-1, 1] (numpy) into the same shape, and says what it is (`name`, `device`, `precision`).
Heavy imports (onnxruntime, tensorrt, CUDA) happen inside each backend, so this package
imports on any machine.
`create_backend("auto", ...)` picks the fastest one the machine and the package allow.
"""

from __future__ import annotations

import logging

from cyclegan.backends.base import Backend, BackendName, BackendUnavailable, DeviceName
from cyclegan.package import ModelPackage

__all__ = [
    "Backend",
    "BackendName",
    "BackendUnavailable",
    "DeviceName",
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
) -> Backend:
    """The backend `kind` for one direction of `package`; "auto" picks the fastest available.

    auto: TensorRT with a matching plan on a GPU; else PyTorch FP16 on a GPU; else ONNX
    Runtime on the CPU when the package has an ONNX graph; else PyTorch on the CPU.
    """
    package.direction(direction)  # a clear error for an unknown direction, before any work
    use_cuda = device == "cuda" or (device == "auto" and cuda_available())
    if device == "cuda" and not cuda_available():
        raise BackendUnavailable("device cuda was asked for, but PyTorch sees no CUDA device")
    if kind == "auto":
        return _auto(package, direction, use_cuda, threads)
    if kind == "onnxruntime":
        from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_package(package, direction, use_cuda, threads)
    if kind == "torch":
        from cyclegan.backends.torch_runtime import TorchBackend

        return TorchBackend.from_package(package, direction, "cuda" if use_cuda else "cpu", threads)
    if kind == "tensorrt":
        from cyclegan.backends.tensorrt_runtime import TensorRTBackend

        return TensorRTBackend.from_package(package, direction)
    raise ValueError(f"unknown backend {kind!r} (choose auto, onnxruntime, torch or tensorrt)")


def _auto(package: ModelPackage, direction: str, use_cuda: bool, threads: int | None) -> Backend:
    if use_cuda:
        if tensorrt_available():
            from cyclegan.backends.tensorrt_runtime import TensorRTBackend

            try:
                return TensorRTBackend.from_package(package, direction)
            except (BackendUnavailable, FileNotFoundError) as reason:
                log.warning("not using TensorRT for %s: %s", direction, reason)
        from cyclegan.backends.torch_runtime import TorchBackend

        return TorchBackend.from_package(package, direction, "cuda", threads)
    if package.direction(direction).onnx is not None:
        from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_package(package, direction, False, threads)
    log.info("%s has no ONNX graph (run python -m compile onnx): using PyTorch", direction)
    from cyclegan.backends.torch_runtime import TorchBackend

    return TorchBackend.from_package(package, direction, "cpu", threads)
