"""ONNX Runtime backend: the CPU default; the CUDA provider where onnxruntime-gpu is installed."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cyclegan.backends.base import BackendUnavailable, PrecisionName
from cyclegan.cpu_features import CPUINFO, x86_without_vnni
from cyclegan.onnx_names import INPUT_NAME, OUTPUT_NAME
from cyclegan.package import Int8Info, ModelPackage, OnnxInfo

log = logging.getLogger(__name__)


class OnnxRuntimeBackend:
    name = "onnxruntime"
    max_batch_size = None

    def __init__(
        self,
        path: Path,
        use_cuda: bool = False,
        threads: int | None = None,
        spin: bool = True,
        profile_prefix: str | None = None,
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
        if profile_prefix is not None:  # ONNX Runtime's trace of every node (compile operators)
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
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
        cpuinfo: Path = CPUINFO,
        profile_prefix: str | None = None,
    ) -> OnnxRuntimeBackend:
        info = package.direction(direction).onnx
        if info is None:
            raise BackendUnavailable(
                f"{package.path}: {direction} has no ONNX graph; run python -m compile onnx "
                f"--package {package.path}"
            )
        requested = precision
        if precision == "auto":
            precision = fast_precision(info, use_cuda)
        if precision == "int8" and saturates(info.int8, cpuinfo):
            if requested == "auto":
                precision = "fp32"
            log.warning(
                "%s: %sits INT8 graph has 8-bit weights, which lose accuracy on this CPU (no "
                "VNNI); serving the %s graph (rerun python -m compile quantize --package %s)",
                direction, "int8 asked for; " if requested == "int8" else "", precision,
                package.path,
            )  # fmt: skip
        path = graph_file(package, direction, precision)
        if precision == "int8" and use_cuda:
            raise BackendUnavailable("the INT8 graph is for the CPU; on a GPU use fp16")
        return cls(path, use_cuda, threads, spin, profile_prefix)

    def translate(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def graph_file(package: ModelPackage, direction: str, precision: str) -> Path:
    """The file of a direction's ONNX graph at `precision` ("fp32", "fp16", "int8");
    BackendUnavailable, naming the compile command that makes it, when the package lacks it."""
    info = package.direction(direction).onnx
    graphs = {} if info is None else {"fp32": info, "fp16": info.fp16, "int8": info.int8}
    graph = graphs.get(precision)
    if graph is None:
        command = "quantize" if precision == "int8" and info is not None else "onnx"
        raise BackendUnavailable(
            f"{package.path}: {direction} has no {precision} ONNX graph; run python -m "
            f"compile {command} --package {package.path}"
        )
    return package.path / graph.file


def fast_precision(info: OnnxInfo, use_cuda: bool) -> PrecisionName:
    """`auto`: the FP16 graph on a GPU (on the CPU it only adds casts); on the CPU the INT8
    graph, recorded only once it passed its quality gate."""
    fast = info.fp16 if use_cuda else info.int8
    return ("fp16" if use_cuda else "int8") if fast is not None else "fp32"


def saturates(int8: Int8Info | None, cpuinfo: Path = CPUINFO) -> bool:
    """An INT8 graph with 8-bit weights (quantized before `compile quantize` used 7) on an x86
    CPU without VNNI: there ONNX Runtime's uint8 x int8 products saturate 16-bit sums."""
    return int8 is not None and int8.weight_bits == 8 and x86_without_vnni(cpuinfo)
