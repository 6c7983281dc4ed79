"""Dependencies: pinned once (pyproject.toml), locked (requirements/), declared by each stage.

- every direct pin of pyproject.toml has the same version in requirements/lock.txt;
- requirements/serve.txt (the images, the bento) is the locked serve extra: no torch, locust,
  onnxslim or CUDA packages;
- every third-party import of a stage comes from a distribution its extra declares;
- the wheel holds `cyclegan` alone (the stages run from the repository, not site-packages).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

from tests.builders import ROOT

PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")
SELF = "cyclegan-service"
# Never in the service's environment: the reason the serve extra exists.
NOT_SERVED = {"torch", "triton", "locust", "onnxslim", "onnx", "onnxconverter-common"}
FIRST_PARTY = {"cyclegan", "training", "compile", "serving", "loadtest", "tests"}
# Imported lazily on GPU machines only; not installable from the package index here.
GPU_ONLY = {"tensorrt"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def extra(name: str) -> dict[str, str]:
    """{distribution: version} that `pip install .[name]` asks for directly ("" = core)."""
    project = pyproject()["project"]
    requirements = project["dependencies"] + (
        project["optional-dependencies"][name] if name else []
    )
    pins: dict[str, str] = {}
    for requirement in requirements:
        if requirement.startswith(f"{SELF}["):  # a self-reference: the union of those extras
            for other in requirement[len(SELF) + 1 : -1].split(","):
                pins |= extra(other.strip())
            continue
        match = PIN.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[canonical(match[1])] = match[2]
    return pins


def locked(file: str) -> dict[str, str]:
    text = (ROOT / "requirements" / file).read_text()
    return {canonical(m[1]): m[2] for m in map(PIN.match, text.splitlines()) if m}


def test_lock_file_has_every_pin_of_pyproject() -> None:
    lock = locked("lock.txt")
    everything = extra("dev")
    assert everything["torch"] == "2.13.0"  # unpinned, pip pulls a multi-GB CUDA build
    # torch stays out of the lock, so that both its CPU (+cpu) and CUDA builds fit it.
    assert "torch" not in lock
    stale = {
        name: (version, lock.get(name))
        for name, version in everything.items()
        if name != "torch" and lock.get(name) != version
    }
    assert not stale, f"pyproject.toml vs requirements/lock.txt (run make lock): {stale}"


def test_serve_requirements_are_the_locked_serve_extra() -> None:
    serve, lock = locked("serve.txt"), locked("lock.txt")
    assert serve and all(lock.get(name) == version for name, version in serve.items())
    assert extra("serve").items() <= serve.items()
    heavy = {name for name in serve if name in NOT_SERVED or name.startswith("nvidia-cu")}
    assert not heavy, f"requirements/serve.txt must not install {heavy}"
    assert not NOT_SERVED & extra("serve").keys()


def test_images_and_the_bento_install_the_locked_files() -> None:
    bento = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert bento["python"]["requirements_txt"] == "./requirements/serve.txt"
    assert "packages" not in bento["python"] and bento["python"]["lock_packages"] is False
    cpu = (ROOT / "deploy" / "docker" / "Dockerfile.cpu").read_text()
    gpu = (ROOT / "deploy" / "docker" / "Dockerfile.gpu").read_text()
    assert "requirements/serve.txt" in cpu and "requirements/serve.txt" in gpu
    for path in ("Makefile", "bentofile.yaml", "deploy/docker/Dockerfile.cpu",
                 "deploy/docker/Dockerfile.gpu", "deploy/container_test.py"):  # fmt: skip
        pins = re.findall(r"[A-Za-z0-9_-]+==\d[\w.]*", (ROOT / path).read_text())
        assert not pins, f"{path} pins {pins}: pins belong in pyproject.toml"


# Which extra declares what each part of the tree may import.
STAGES = {
    "cyclegan": "torch",  # the shared package: torch only lazily, for the torch backend
    "serving": "serve",
    "training": "train",
    "compile": "compile",
    "loadtest": "loadtest",
    "loadtest/benchmark.py": "dev",  # starts the service it measures (bentoml, serving)
    "loadtest/reference.py": "dev",  # the benchmark's yardstick: the generator in PyTorch
    "loadtest/profile.py": "dev",  # starts the service and samples it (psutil, py-spy)
    "deploy/container_test.py": "dev",
    "tests": "dev",
}


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("part", list(STAGES))
def test_every_third_party_import_is_declared(part: str) -> None:
    root = ROOT / part
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    more_specific = [ROOT / other for other in STAGES if other != part and other.startswith(part)]
    allowed = set(extra(STAGES[part]))
    distributions = packages_distributions()
    undeclared: dict[str, set[str]] = {}
    for file in files:
        if file in more_specific:
            continue
        for name in imported_names(file) - GPU_ONLY:
            providers = {canonical(d) for d in distributions.get(name, [name])}
            if not providers & allowed:
                undeclared.setdefault(name, set()).add(str(file.relative_to(ROOT)))
    assert not undeclared, f"imports that the {STAGES[part]!r} extra does not declare: {undeclared}"


@pytest.mark.slow
def test_wheel_holds_only_the_shared_package(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in FIRST_PARTY - {"tests"}:  # all of them, so the wheel's package filter is tested
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA")))
    assert tops == {"cyclegan", "cyclegan_service-0.1.0.dist-info"}, tops
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata.decode(), re.M)
    served = [r for r in requires if "extra ==" not in r or 'extra == "serve"' in r]
    assert not [r for r in served if canonical(re.split(r"[=<>\[; ]", r)[0]) in NOT_SERVED]
