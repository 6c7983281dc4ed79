"""The models the service runs: every package in the model directory, one backend per direction.

`ModelRegistry.load` validates each package, creates its backends and warms each one up with
a batch, so that the first real request pays no start-up cost. A package that fails
validation is logged with the reason and leaves the registry not ready.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cyclegan.backends import Backend, BackendUnavailable, create_backend
from cyclegan.imaging import served_resolution
from cyclegan.package import Direction, PackageError, load_package
from serving.prometheus import BATCH_SIZE, INFERENCE_TIME, QUEUE_WAIT
from serving.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class DirectionInfo:
    direction: str
    model: str
    version: str
    native_resolution: int
    backend: Backend
    source: str
    target: str
    domains: tuple[str, str]  # the package's pair, in its own order: what the page groups by
    # the package's example photo and its translation, relative to the model directory
    example: dict[str, str] | None = None


@dataclass
class ModelRegistry:
    directions: dict[str, DirectionInfo] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # for clients: no server paths

    @property
    def ready(self) -> bool:
        return bool(self.directions) and not self.problems

    @classmethod
    def load(cls, settings: ServiceSettings, warm_up: bool = True) -> ModelRegistry:
        registry = cls()
        folders = find_packages(settings.model_dir)
        if settings.package_names:
            missing = sorted(set(settings.package_names) - {f.name for f in folders})
            for name in missing:
                log.error("%s: no model package %s (CYCLEGAN_PACKAGES)", settings.model_dir, name)
                registry.problems.append(f"model package {name} is not installed")
            folders = [f for f in folders if f.name in settings.package_names]
        if not folders:
            log.error("%s: no model packages (folders with model.json)", settings.model_dir)
            registry.problems.append("no model packages are installed")
        for folder in folders:
            try:
                package = load_package(folder)
                for name, spec in package.manifest.directions.items():
                    if name in registry.directions:
                        raise PackageError(
                            f"{folder}: direction {name} is also served by another package"
                        )
                    backend = create_backend(
                        settings.backend,
                        package,
                        name,
                        settings.device,
                        settings.inference_threads,
                        settings.precision,
                        spin=settings.thread_spinning,
                    )
                    registry.directions[name] = DirectionInfo(
                        name,
                        package.name,
                        package.manifest.version,
                        spec.native_resolution,
                        backend,
                        spec.source,
                        spec.target,
                        package.manifest.domains,
                        example_files(settings.model_dir, folder, spec),
                    )
                    log.info(
                        "%s: %s %s on %s %s (%s)", name, package.name, package.manifest.version,
                        backend.name, backend.device, backend.precision,
                    )  # fmt: skip
            except Exception as error:  # any failure keeps the service not-ready, with the reason
                registry.problems.append(client_message(folder, error))
                log.error("model package %s cannot be served: %s", folder, error)
        if warm_up:
            for info in registry.directions.values():
                size = served_resolution(info.native_resolution)
                started = time.perf_counter()
                info.backend.translate(np.zeros((1, 3, size, size), np.float32))
                log.info("%s warmed up in %.2f s", info.direction, time.perf_counter() - started)
        return registry

    def translate(
        self, direction: str, canvases: list[np.ndarray], queue_waits: list[float]
    ) -> list[np.ndarray]:
        """Run same-direction (3, R, R) uint8 canvases, grouped by size; uint8 out, in order."""
        info = self.directions[direction]
        for wait in queue_waits:
            QUEUE_WAIT.labels(direction).observe(wait)
        outputs: list[np.ndarray | None] = [None] * len(canvases)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, canvas in enumerate(canvases):
            by_shape.setdefault(canvas.shape, []).append(index)
        for indices in by_shape.values():
            batch = np.stack([canvases[i] for i in indices]).astype(np.float32) / 127.5 - 1.0
            began = time.perf_counter()
            result = info.backend.translate(batch)
            INFERENCE_TIME.labels(direction, info.backend.name).observe(time.perf_counter() - began)
            BATCH_SIZE.labels(direction, info.backend.name).observe(len(indices))
            pixels = np.clip((result + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
            for slot, i in enumerate(indices):
                outputs[i] = pixels[slot]
        return [out for out in outputs if out is not None]


def client_message(folder: Path, error: Exception) -> str:
    """What a client may read about a package that failed: its validation message with the
    package's folder named relatively, or only that it failed (the log has the detail)."""
    if isinstance(error, PackageError | BackendUnavailable):
        return f"model package {folder.name}: " + str(error).replace(str(folder), folder.name)
    return f"model package {folder.name} could not be loaded (the server log says why)"


def example_files(model_dir: Path, folder: Path, spec: Direction) -> dict[str, str] | None:
    """The direction's example photo and translation, as paths relative to the model directory
    (load_package has checked that they exist inside the package and match their hashes)."""
    if spec.example is None:
        return None
    inside = folder.relative_to(model_dir)
    return {
        "input": (inside / spec.example.input.file).as_posix(),
        "output": (inside / spec.example.output.file).as_posix(),
    }


def find_packages(model_dir: Path) -> list[Path]:
    if not model_dir.is_dir():
        return []
    if (model_dir / "model.json").is_file():  # the directory is itself one package
        return [model_dir]
    return sorted(p for p in model_dir.iterdir() if (p / "model.json").is_file())
