"""`python -m compile rate --package P --batch N --seconds S`: the images/s of the backend the
service picks for a direction (ONNX Runtime's `auto` graph, threads and spinning as served), as
one JSON line. For a benchmark that times the raw runtime in turns with the service, in a
process of its own (loadtest/benchmark.py, section 2).
"""

from __future__ import annotations

import numpy as np

from compile.timing import rate
from cyclegan.backends import create_backend
from cyclegan.package import ModelPackage


def raw_rate(
    package: ModelPackage, direction: str | None, batch: int, seconds: float, size: int
) -> dict[str, object]:
    direction = direction or next(iter(package.manifest.directions))
    # as serving/registry.py makes it with the default settings: threads from the CPU limit
    # are ONNX Runtime's own sizing here, and idle threads sleep
    backend = create_backend("onnxruntime", package, direction, "cpu", spin=False)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    backend.translate(x)  # warm-up: memory and kernels
    return {
        "direction": direction,
        "runtime": f"{backend.name} {backend.device} {backend.precision}",
        "batch": batch,
        "images_per_second": rate(lambda: backend.translate(x), batch, seconds),
    }
