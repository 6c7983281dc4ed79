"""`python -m compile operators`: where one image's time goes inside a graph, by operator type.

Multiply-adds do not say how fast a small generator runs on a CPU: its time goes to
normalisations, pads and layout changes as much as to convolutions. This runs, for each
direction, the CPU graph the service runs (INT8 where it passed its gate, else fp32), opened as
the service opens it (`OnnxRuntimeBackend.from_package`, idle threads sleeping), on one image
under ONNX Runtime's profiler, and adds the nodes' kernel times up by operator type, so a
student can be chosen by measured latency.
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

from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend
from cyclegan.generator import count_macs
from cyclegan.package import ModelPackage

log = logging.getLogger(__name__)

WARMUP_RUNS = 5  # profiled too: ONNX Runtime traces a session from its start


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
    package: ModelPackage, direction: str, size: int, runs: int, threads: int
) -> tuple[str, float, dict[str, float], dict[str, int]]:
    """(graph precision, median ms per run, kernel ms per run by op type, nodes by op type) of
    the graph the service runs for `direction` on the CPU, opened as the service opens it."""
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        backend = OnnxRuntimeBackend.from_package(
            package, direction, use_cuda=False, threads=threads, spin=False,
            profile_prefix=str(Path(tmp) / "profile"),
        )  # fmt: skip
        for _ in range(WARMUP_RUNS):  # first runs allocate and pick kernels
            backend.translate(x)
        walls = []
        for _ in range(runs):
            began = time.perf_counter()
            backend.translate(x)
            walls.append(time.perf_counter() - began)
        events = json.loads(Path(backend.session.end_profiling()).read_text())
    ms, nodes = kernel_times(events, WARMUP_RUNS + runs)
    return backend.precision, statistics.median(walls) * 1000, ms, nodes


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
        precision, wall, ms, nodes = profile_graph(package, name, size, runs, threads)
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
