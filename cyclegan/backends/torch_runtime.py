"""PyTorch backend: fp32 on the CPU; on CUDA, half-precision weights and channels_last
(or fp32 where asked)."""

from __future__ import annotations

import numpy as np
import torch

from cyclegan.backends.base import BackendUnavailable, PrecisionName
from cyclegan.package import ModelPackage


class TorchBackend:
    name = "torch"
    max_batch_size = None

    def __init__(
        self,
        net: torch.nn.Module,
        device: str = "cpu",
        threads: int | None = None,
        precision: PrecisionName = "auto",
    ) -> None:
        if precision == "auto":
            precision = "fp16" if device == "cuda" else "fp32"
        if precision == "int8" or (precision == "fp16" and device != "cuda"):
            raise BackendUnavailable(
                f"the PyTorch backend runs fp32, or fp16 on CUDA; not {precision} on {device}"
            )
        self.device = device
        self.precision = precision
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        net = net.eval().to(device)
        if precision == "fp16":
            # Tensor cores want fp16 and NHWC; InstanceNorm stays accurate enough in fp16 here
            # (compile verify checks PSNR >= 35 dB against fp32).
            net = net.half().to(memory_format=torch.channels_last)
        self.net = net

    @classmethod
    def from_package(
        cls,
        package: ModelPackage,
        direction: str,
        device: str,
        threads: int | None = None,
        precision: PrecisionName = "auto",
    ) -> TorchBackend:
        return cls(package.load_generator(direction), device, threads, precision)

    @torch.inference_mode()
    def translate(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.precision == "fp16":
            x = x.to("cuda", non_blocking=True).half().contiguous(memory_format=torch.channels_last)
        elif self.device == "cuda":
            x = x.to("cuda", non_blocking=True)
        return self.net(x).float().cpu().numpy()
