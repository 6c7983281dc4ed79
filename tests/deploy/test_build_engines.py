"""deploy/docker/build-engines.sh, the GPU pod's init container: plans built once per GPU model
and reused through the cache, and never reused for another model, GPU or set of build flags.

The TensorRT build itself needs a GPU; a stand-in takes its place here. Like
`python -m compile tensorrt --skip-existing`, it keeps a plan only where it is current (built
for this GPU from this model.json), else builds one and records the build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import ROOT

SCRIPT = ROOT / "deploy" / "docker" / "build-engines.sh"
PACKAGES = ("horse2zebra", "summer2winter")
STAND_IN = """
import hashlib, os, sys
from pathlib import Path

package = Path(sys.argv[sys.argv.index("--package") + 1])
flags = " ".join(a for a in sys.argv[1:] if a != str(package))
gpu = os.environ["STAND_IN_GPU"]
current = f"{gpu} {flags} " + hashlib.sha256((package / "model.json").read_bytes()).hexdigest()
plan = package / "engines" / f"{gpu}-trt10" / "plan"
if not plan.is_file() or plan.read_text() != current:
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(current)
    with open(os.environ["STAND_IN_LOG"], "a") as log:
        log.write(f"{package.name}\\n")
"""

needs_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("sh", "sha256sum", "diff", "mktemp")),
    reason="needs sh, sha256sum, diff and mktemp",
)


class Node:
    """The image's packages and the shared cache; each start() is a new pod."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = root / "image-models"
        self.cache = root / "cache"
        self.stand_in = root / "stand_in.py"
        self.stand_in.write_text(STAND_IN)
        for name in PACKAGES:
            (self.source / name).mkdir(parents=True)
            (self.source / name / "model.json").write_text(json.dumps({"name": name}))
        (self.source / "README.txt").write_text("not a package")
        self.pods = 0

    def start(self, gpu: str = "nvidia-h100", *flags: str) -> tuple[Path, list[str]]:
        """One pod's init container: (its models folder, the packages it had to build)."""
        self.pods += 1
        dest, log = self.root / f"pod{self.pods}", self.root / f"pod{self.pods}.log"
        log.touch()
        command = [sys.executable, str(self.stand_in), "tensorrt", "--skip-existing", *flags]
        done = subprocess.run(
            ["sh", str(SCRIPT), str(self.source), str(dest), str(self.cache), "--", *command],
            env={"PATH": "/usr/bin:/bin", "STAND_IN_GPU": gpu, "STAND_IN_LOG": str(log)},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return dest, sorted(log.read_text().split())


def plan(models: Path, package: str, folder: str = "nvidia-h100-trt10") -> str:
    return (models / package / "engines" / folder / "plan").read_text()


@needs_tools
def test_plans_are_built_once_and_then_come_from_the_cache(tmp_path: Path) -> None:
    node = Node(tmp_path)
    first, built = node.start()
    assert built == sorted(PACKAGES)
    second, built = node.start()
    assert built == []
    for name in PACKAGES:
        assert plan(second, name) == plan(first, name)
    assert not (node.source / PACKAGES[0] / "engines").exists()  # the image's copy is untouched
    assert (second / "README.txt").is_file()


@needs_tools
def test_each_gpu_model_gets_its_own_plans_and_both_are_kept(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.start("nvidia-h100")
    other, built = node.start("nvidia-l4")
    assert built == sorted(PACKAGES)
    assert plan(other, PACKAGES[0], "nvidia-l4-trt10").startswith("nvidia-l4 ")
    assert node.start("nvidia-h100")[1] == []
    assert node.start("nvidia-l4")[1] == []


@needs_tools
def test_a_new_model_or_other_flags_never_meet_old_plans(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.start()
    (node.source / PACKAGES[0] / "model.json").write_text(json.dumps({"name": "retrained"}))
    assert node.start()[1] == [PACKAGES[0]]
    assert node.start("nvidia-h100", "--max-batch", "8")[1] == sorted(PACKAGES)
    assert node.start()[1] == []


@needs_tools
def test_a_stale_cached_plan_is_rebuilt_and_replaced(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.start()
    (cached,) = node.cache.glob(f"{PACKAGES[0]}-*/nvidia-h100-trt10/plan")
    cached.write_text("damaged")
    assert node.start()[1] == [PACKAGES[0]]
    assert cached.read_text() != "damaged"
    assert node.start()[1] == []
    assert not list(node.cache.glob("*/.staging*"))


@needs_tools
def test_a_cache_that_cannot_be_written_costs_a_build_never_the_pod(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cache.write_text("a file where the cache folder should be")
    models, built = node.start()
    assert built == sorted(PACKAGES)
    assert plan(models, PACKAGES[0]).startswith("nvidia-h100 ")
