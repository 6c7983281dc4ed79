"""TensorRT backend: runs an FP16 plan with torch CUDA tensors as its buffers.

Written against TensorRT 10/11's tensor-name API (`set_input_shape`, `set_tensor_address`,
`execute_async_v3`). A plan is refused unless its metadata names this GPU and this TensorRT
version. TensorRT cannot be installed on the machines this project is built on, so this
path is verified only where TensorRT exists (tests marked `gpu`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from cyclegan.backends.base import BackendUnavailable
from cyclegan.engines import EngineMeta, check_compatible, plan_paths, read_meta
from cyclegan.package import ModelPackage, sha256_file


def import_tensorrt():  # type: ignore[no-untyped-def]
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            "TensorRT is not installed. Use a container built FROM an NVIDIA TensorRT image "
            "(nvcr.io/nvidia/tensorrt), or `pip install tensorrt` from NVIDIA's package index "
            "(pypi.nvidia.com) on a machine with an NVIDIA GPU"
        ) from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU, and PyTorch sees no CUDA device")
    return trt


def this_gpu() -> tuple[str, tuple[int, int]]:
    return torch.cuda.get_device_name(), torch.cuda.get_device_capability()


class TensorRTBackend:
    name = "tensorrt"
    device = "cuda"
    precision = "fp16"

    def __init__(self, plan: Path, meta: EngineMeta) -> None:
        trt = import_tensorrt()
        gpu_name, capability = this_gpu()
        check_compatible(meta, gpu_name, capability, trt.__version__)
        if sha256_file(plan) != meta.plan_sha256:
            raise ValueError(f"{plan}: sha256 does not match its metadata; rebuild the engine")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise ValueError(f"{plan}: TensorRT could not deserialize this plan")
        self.context = self.engine.create_execution_context()
        self.input_name, self.output_name = meta.input_name, meta.output_name
        self.max_batch_size = meta.profile.max[0]
        self.profile = meta.profile
        self.lock = threading.Lock()  # one execution context: one batch at a time

    @classmethod
    def from_package(cls, package: ModelPackage, direction: str) -> TensorRTBackend:
        trt = import_tensorrt()
        gpu_name, _ = this_gpu()
        plan, meta_file = plan_paths(package.path, gpu_name, trt.__version__, direction)
        if not plan.is_file() or not meta_file.is_file():
            raise FileNotFoundError(
                f"no TensorRT plan for {direction} on {gpu_name} with TensorRT {trt.__version__} "
                f"(expected {plan}); build it with: "
                f"python -m compile tensorrt --package {package.path}"
            )
        return cls(plan, read_meta(meta_file))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        low, high = self.profile.min, self.profile.max
        if any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True)):
            raise ValueError(f"input shape {shape} is outside the engine's profile {low}..{high}")
        if not self.context.set_input_shape(self.input_name, shape):
            raise RuntimeError(f"TensorRT refused input shape {shape}")
        out = torch.empty(
            tuple(self.context.get_tensor_shape(self.output_name)),
            device="cuda",
            dtype=torch.float32,
        )
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed (see the TensorRT log above)")
        return out

    def translate(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to("cuda")
        with self.lock:
            outputs = [self._run(chunk.contiguous()) for chunk in x.split(self.max_batch_size)]
            return torch.cat(outputs).cpu().numpy()  # .cpu() waits for the stream
