"""ONNX Runtime backend: the CPU default; the CUDA provider where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cyclegan.backends.base import BackendUnavailable
from cyclegan.onnx_names import INPUT_NAME, OUTPUT_NAME
from cyclegan.package import ModelPackage


class OnnxRuntimeBackend:
    name = "onnxruntime"
    max_batch_size = None

    def __init__(self, path: Path, use_cuda: bool = False, threads: int | None = None) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if use_cuda:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(
                    "ONNX Runtime has no CUDA provider here (install onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # ORT raises its own Fail/InvalidGraph types
            raise ValueError(f"{path}: ONNX Runtime cannot load this graph: {error}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
            raise ValueError(
                f"{path}: expected one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}, "
                f"got {[i.name for i in inputs]} -> {[o.name for o in outputs]}"
            )
        if inputs[0].shape[1] != 3:
            raise ValueError(f"{path}: input has {inputs[0].shape[1]} channels, expected 3")
        self.device = "cuda" if use_cuda else "cpu"
        self.precision = "fp16" if ".fp16." in path.name else "fp32"

    @classmethod
    def from_package(
        cls, package: ModelPackage, direction: str, use_cuda: bool, threads: int | None = None
    ) -> OnnxRuntimeBackend:
        info = package.direction(direction).onnx
        if info is None:
            raise BackendUnavailable(
                f"{package.path}: {direction} has no ONNX graph; run python -m compile onnx "
                f"--package {package.path}"
            )
        # On a GPU the FP16 graph is the fast one; on the CPU FP16 only adds casts.
        file = info.fp16.file if use_cuda and info.fp16 is not None else info.file
        return cls(package.path / file, use_cuda, threads)

    def translate(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
