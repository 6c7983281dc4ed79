"""The runtime-backend interface: what every backend is, and the error for one that cannot run.

The backend modules import only this (never the package's `__init__`, which imports them).
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

BackendName = Literal["auto", "onnxruntime", "torch", "tensorrt"]
DeviceName = Literal["auto", "cpu", "cuda"]
# auto: fp16 on a GPU; on the CPU the INT8 graph where the package has one, else fp32.
PrecisionName = Literal["auto", "fp32", "fp16", "int8"]


class Backend(Protocol):
    name: str  # "onnxruntime", "torch", "tensorrt"
    device: str  # "cpu", "cuda"
    precision: str  # "fp32", "fp16", "int8"
    max_batch_size: int | None  # a TensorRT profile's limit; None when any batch works

    def translate(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [-1, 1] -> (N, 3, H, W) float32 in [-1, 1]."""
        ...


class BackendUnavailable(RuntimeError):
    """The asked-for backend cannot run here; the message says what is missing."""
