"""The generator: every served package loaded once, and a batcher that runs concurrent images
of one direction as one forward pass.

Where it runs is a setting (`CYCLEGAN_GENERATOR`):
- `in-process` (the default): in the front's own process, through `InProcessGenerator`. No hop:
  the canvas is handed over in memory, not pickled over loopback HTTP twice.
- `worker`: in BentoML worker processes of their own (serving/service.py, `BatchedGenerator`),
  reached through serving/generator_client.py. A crashed runtime then takes down only the
  generator, the front answers 503 while BentoML restarts it, and `CYCLEGAN_WORKERS` of them
  can run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import bentoml
import numpy as np

from serving.batcher import Batcher, Overloaded
from serving.errors import ServiceError
from serving.prometheus import KNOWN_DIRECTIONS
from serving.registry import ModelRegistry
from serving.settings import ServiceSettings

log = logging.getLogger("serving")
LOADING = "the models are loading"


class GenerateItem(bentoml.IODescriptor):
    """One image on its way to the batcher (BentoML's base class knows numpy fields)."""

    direction: str
    canvas: np.ndarray  # (3, R, R) uint8


class Generated(bentoml.IODescriptor):
    """The translated canvas, and where its time in the generator went."""

    canvas: np.ndarray  # (3, R, R) uint8
    queue_s: float  # waiting for its batch
    infer_s: float  # its direction's forward pass in that batch, conversions included


class Generator:
    """Loads every model package (in the constructor) and runs batches through its backends."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.registry = ModelRegistry.load(settings)
        self.batcher = Batcher(
            self.run_batch, settings.max_batch_size, settings.max_latency_ms / 1000
        )

    async def generate(self, item: GenerateItem) -> Generated:
        """One canvas through the batcher; Overloaded when it waited past the latency goal."""
        return await self.batcher.submit(item)

    def run_batch(self, items: list[GenerateItem], waits: list[float]) -> list[Generated]:
        """Same-direction items run together; the answers are in the order of `items`."""
        outputs: list[Generated | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.direction, []).append(index)
        # the directions of one batch run one after another: each image also waits for the
        # passes of the directions before its own
        queued = 0.0
        for direction, indices in groups.items():
            began = time.perf_counter()
            results = self.registry.translate(
                direction, [items[i].canvas for i in indices], [waits[i] for i in indices]
            )
            infer = time.perf_counter() - began
            for i, result in zip(indices, results, strict=True):
                outputs[i] = Generated(canvas=result, queue_s=waits[i] + queued, infer_s=infer)
            queued += infer
        return [out for out in outputs if out is not None]

    def describe(self) -> dict[str, Any]:
        """Whether it is ready, what is wrong if not, and every direction it serves."""
        return {
            "ready": self.registry.ready,
            "problems": self.registry.problems,
            "directions": {
                name: {
                    "model": info.model,
                    "version": info.version,
                    "native_resolution": info.native_resolution,
                    "backend": info.backend.name,
                    "device": info.backend.device,
                    "precision": info.backend.precision,
                    "source": info.source,
                    "target": info.target,
                    "domains": list(info.domains),
                    "example": info.example,
                }
                for name, info in self.registry.directions.items()
            },
        }


class InProcessGenerator:
    """The front's handle on a generator in its own process: the calls of GeneratorClient
    (describe, readiness, generate), with no hop and nothing to retry.

    The models load in a thread, so the server answers from its first second: /readyz says
    503 "loading" meanwhile, as it does while a worker generator starts."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._generator: Generator | None = None
        self._described: dict[str, Any] | None = None
        threading.Thread(
            target=self._load, args=(settings,), name="load-models", daemon=True
        ).start()

    def _load(self, settings: ServiceSettings) -> None:
        started = time.perf_counter()
        self._generator = Generator(settings)  # a package that fails is a problem it records
        log.info("models loaded in %.1f s", time.perf_counter() - started)

    async def describe(self) -> dict[str, Any]:
        """The generator's description (kept once loaded); not ready while it loads."""
        if self._described is not None:
            return self._described
        if self._generator is None:
            return {"ready": False, "problems": [LOADING], "directions": {}}
        self._described = self._generator.describe()
        if self._described["ready"]:
            KNOWN_DIRECTIONS.update(self._described["directions"])
        return self._described

    async def readiness(self) -> str | None:
        """None when ready, else why not."""
        info = await self.describe()
        return None if info["ready"] else "; ".join(info["problems"]) or LOADING

    async def generate(self, item: GenerateItem) -> Generated:
        if self._generator is None:
            raise ServiceError(503, f"the service is not ready: {LOADING}")
        try:
            return await self._generator.generate(item)
        except Overloaded:  # it waited past max_latency_ms
            raise ServiceError(503, "the server is overloaded; retry shortly") from None
