"""The serving path runs with ONNX Runtime alone: a CPU image needs no torch (a multi-GB wheel)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.builders import ROOT

CHECK = """
import sys
sys.modules["torch"] = None  # from here on, `import torch` raises ImportError
import numpy as np
from cyclegan.backends import create_backend
from cyclegan.package import load_package

package = load_package(sys.argv[1] + "/horse2zebra")
backend = create_backend("auto", package, "horse2zebra")
assert backend.name == "onnxruntime", backend.name
assert backend.translate(np.zeros((2, 3, 32, 48), np.float32)).shape == (2, 3, 32, 48)
import serving.service, serving.registry  # the services import too
from serving.registry import ModelRegistry
from serving.settings import ServiceSettings
registry = ModelRegistry.load(ServiceSettings(model_dir=sys.argv[1]))
assert registry.ready, registry.problems
print("ok without torch")
"""


def test_serving_needs_no_torch(model_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok without torch" in result.stdout
