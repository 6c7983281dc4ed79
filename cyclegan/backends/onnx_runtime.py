"""ONNX Runtime backend: the CPU default; the CUDA provider where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cyclegan.backends.base import BackendUnavailable, PrecisionName
from cyclegan.onnx_names import INPUT_NAME, OUTPUT_NAME
from cyclegan.package import ModelPackage


class OnnxRuntimeBackend:
    name = "onnxruntime"
    max_batch_size = None

    def __init__(
        self, path: Path, use_cuda: bool = False, threads: int | None = None, spin: bool = True
    ) -> None:
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
        if not spin:
            # idle worker threads sleep instead of spinning: several sessions (one per
            # direction) and the front's image work share few cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
        # compile names the graphs <direction>.onnx, .fp16.onnx and .int8.onnx
        self.precision = next((p for p in ("fp16", "int8") if f".{p}." in path.name), "fp32")

    @classmethod
    def from_package(
        cls,
        package: ModelPackage,
        direction: str,
        use_cuda: bool,
        threads: int | None = None,
        precision: PrecisionName = "auto",
        spin: bool = True,
    ) -> OnnxRuntimeBackend:
        info = package.direction(direction).onnx
        if info is None:
            raise BackendUnavailable(
                f"{package.path}: {direction} has no ONNX graph; run python -m compile onnx "
                f"--package {package.path}"
            )
        if precision == "auto":
            # On a GPU the FP16 graph is the fast one; on the CPU FP16 only adds casts, and
            # the INT8 graph (recorded only once it passed its quality gate) is the fast one.
            fast = info.fp16 if use_cuda else info.int8
            precision = ("fp16" if use_cuda else "int8") if fast is not None else "fp32"
        graphs = {"fp32": info, "fp16": info.fp16, "int8": info.int8}
        graph = graphs[precision]
        if graph is None:
            command = "quantize" if precision == "int8" else "onnx"
            raise BackendUnavailable(
                f"{package.path}: {direction} has no {precision} ONNX graph; run python -m "
                f"compile {command} --package {package.path}"
            )
        if precision == "int8" and use_cuda:
            raise BackendUnavailable("the INT8 graph is for the CPU; on a GPU use fp16")
        return cls(package.path / graph.file, use_cuda, threads, spin)

    def translate(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
