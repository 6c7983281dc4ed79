"""`python -m compile operators`: where one image's time goes inside a graph, by operator type.

Multiply-adds do not say how fast a small generator runs on a CPU: its time goes to
normalisations, pads and layout changes as much as to convolutions. This runs each direction's
served CPU graph (INT8 when the package has one, else fp32) on one image under ONNX Runtime's
profiler and adds the nodes' kernel times up by operator type, so a student can be chosen by
measured latency.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cyclegan.backends.onnx_runtime import fast_precision, graph_file
from cyclegan.generator import count_macs
from cyclegan.onnx_names import INPUT_NAME
from cyclegan.package import ModelPackage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphProfile:
    """One direction's graph: median wall time per run and the kernel time per operator type."""

    direction: str
    precision: str
    gmacs: float
    wall_ms: float
    ms_by_operator: dict[str, float]  # per image, summed over the nodes of that type
    nodes_by_operator: dict[str, int]


def profile_graph(
    path: Path, size: int, runs: int, threads: int
) -> tuple[float, dict[str, float], dict[str, int]]:
    """(median ms per run, kernel ms per run by op type, node count by op type) of one graph."""
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as served
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(5):  # first runs allocate and pick kernels
            session.run(None, {INPUT_NAME: x})
        walls = []
        for _ in range(runs):
            began = time.perf_counter()
            session.run(None, {INPUT_NAME: x})
            walls.append(time.perf_counter() - began)
        events = json.loads(Path(session.end_profiling()).read_text())
    return (statistics.median(walls) * 1000, *kernel_times(events, runs + 5))


def kernel_times(events: list[dict], runs: int) -> tuple[dict[str, float], dict[str, int]]:
    """ONNX Runtime's trace events -> (ms per run by op type, nodes by op type)."""
    total: Counter[str] = Counter()
    nodes: dict[str, set[str]] = {}
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        total[op] += event["dur"] / 1000  # microseconds
        nodes.setdefault(op, set()).add(event["name"])
    ms = {op: total[op] / runs for op in total}
    return ms, {op: len(names) for op, names in nodes.items()}


def profile_package(
    package: ModelPackage, size: int = 256, runs: int = 30, threads: int = 2
) -> list[GraphProfile]:
    """Every direction of the package, on its served CPU graph."""
    profiles = []
    for name, spec in package.manifest.directions.items():
        if spec.onnx is None:
            raise ValueError(f"{package.path}: no ONNX graphs; run python -m compile onnx first")
        precision = fast_precision(spec.onnx, use_cuda=False)
        wall, ms, nodes = profile_graph(graph_file(package, name, precision), size, runs, threads)
        gmacs = count_macs(spec.generator, size, size) / 1e9
        profiles.append(GraphProfile(name, precision, gmacs, wall, ms, nodes))
        log.info("%s (%s): %.1f ms per image", name, precision, wall)
    return profiles


def table(profiles: list[GraphProfile]) -> list[str]:
    """One row per direction: wall time, then the largest operator types' shares."""
    lines = [
        "| direction | graph | GMAC | ms per image | by operator: ms (nodes) |",
        "|---|---|---|---|---|",
    ]
    for p in profiles:
        kernel = sum(p.ms_by_operator.values())
        ranked = sorted(p.ms_by_operator.items(), key=lambda item: -item[1])
        parts = [
            f"{op} {ms:.1f} ({p.nodes_by_operator[op]}, {ms / kernel:.0%})"
            for op, ms in ranked
            if ms / kernel >= 0.02
        ]
        lines.append(
            f"| {p.direction} | {p.precision} | {p.gmacs:.2f} | {p.wall_ms:.1f} | "
            f"{', '.join(parts)} |"
        )
    return lines
