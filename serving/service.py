"""The BentoML services: `Translator` (HTTP front) and `BatchedGenerator` (batched inference).

    POST /translate/{direction}   body: image bytes (or a form's `image` field) -> image
    POST /translate               {image, direction, format}: for bentoml.SyncHTTPClient
    GET  /directions              what the server can do
    GET  /examples/{direction}/{input,output}.jpg   a package's example photo and translation
    GET  /readyz                  ready, or 503 with the reason (serving/routes.py)
    GET  /livez                   BentoML's liveness probe
    GET  :CYCLEGAN_METRICS_PORT/metrics   Prometheus metrics, on their own port
                                          (serving/metrics_server.py)

The front decodes each image once, fits it to the model's working canvas and hands a uint8
canvas to the generator (serving/generator.py), whose batcher (serving/batcher.py) runs
concurrent requests as one forward pass. The generator runs in the front's process, or with
CYCLEGAN_GENERATOR=worker in BentoML workers of its own (`BatchedGenerator`). The request
guard (serving/guard.py) admits, limits and counts every translate request before it gets
here. Settings come from CYCLEGAN_* environment variables (serving/settings.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import bentoml
import numpy as np
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType
from starlette.responses import Response

from serving import bentoml_fixes, image_io, routes
from serving.batcher import Overloaded
from serving.errors import INTERNAL, ServiceError, error_response
from serving.generator import Generated, GenerateItem, Generator, InProcessGenerator
from serving.generator_client import GeneratorClient
from serving.guard import RequestGuard
from serving.metrics_server import serve_metrics
from serving.phases import Phases, phases_of
from serving.prometheus import REQUEST_LATENCY
from serving.provenance import Provenance
from serving.settings import get_settings

log = logging.getLogger("serving")
settings = get_settings()
bentoml_fixes.install()  # before BentoML builds the services' apps


@bentoml.service(
    name="cyclegan-generator",
    workers=settings.workers,
    traffic={"timeout": settings.request_timeout_s},
    # BentoML's client to this service replaces its connection pool every 100 requests (or
    # 300 s) by closing the old one, which drops the calls still running on it ("Connection
    # closed."). The generator is local and long-lived: keep one pool.
    runner_connection={"max_requests": 1_000_000_000, "max_age": 1e9},
    metrics={"enabled": False},  # the cyclegan_* series only, on their own port
    # the front logs every request; a second line per image from the internal call would
    # double the log and cost the generator's CPU on every hop
    logging={"access": {"enabled": False}},
)
class BatchedGenerator:
    """The generator as worker processes of its own (CYCLEGAN_GENERATOR=worker)."""

    def __init__(self) -> None:
        self.generator = Generator(settings)

    def __is_ready__(self) -> bool:
        return self.generator.registry.ready

    @bentoml.api
    async def generate(self, item: GenerateItem) -> Generated:
        """One canvas through the batcher; 503 when it waited longer than the latency goal."""
        try:
            return await self.generator.generate(item)
        except Overloaded as reason:
            raise ServiceUnavailable(str(reason)) from None

    @bentoml.api
    def describe(self) -> dict[str, Any]:
        return self.generator.describe()


def example_urls(direction: str) -> dict[str, str]:
    return {kind: f"/examples/{direction}/{kind}.jpg" for kind in ("input", "output")}


@bentoml.service(
    name="cyclegan-translator",
    traffic={"timeout": settings.request_timeout_s},
    http={"port": settings.port},
    metrics={"enabled": False},
)
class Translator:
    if settings.generator == "worker":  # `bentoml serve` starts services this one depends on
        generator = bentoml.depends(BatchedGenerator)

    def __init__(self) -> None:
        serve_metrics(settings.host, settings.metrics_port)  # the front runs one worker
        self.client: GeneratorClient | InProcessGenerator = (
            GeneratorClient(self.generator)
            if settings.generator == "worker"
            else InProcessGenerator(settings)
        )
        # Images being decoded, translated or encoded at once: enough to fill a batch while
        # another runs. The rest wait here, undecoded, and are shed (503) after the latency
        # goal: under overload no CPU goes to images that would be dropped anyway.
        self._work = asyncio.Semaphore(2 * settings.max_batch_size * settings.workers)

    async def describe(self) -> dict[str, Any]:
        return await self.client.describe()

    async def readiness(self) -> str | None:
        """None when ready, else why not (GET /readyz, serving/routes.py)."""
        return await self.client.readiness()

    async def directions(self) -> dict[str, Any]:
        """What GET /directions answers (serving/routes.py): an example is offered by its
        address on this server, never by its place on disk."""
        info = await self.describe()
        return {
            "directions": {
                name: {**d, "example": example_urls(name) if d.get("example") else None}
                for name, d in info["directions"].items()
            },
            "ready": info["ready"],
            "limits": {
                "max_bytes": settings.max_bytes,
                "max_pixels": settings.max_pixels,
                "max_resolution": settings.max_resolution,
                "max_batch_size": settings.max_batch_size,
                "formats": list(image_io.FORMATS),
            },
        }

    async def example_file(self, direction: str, kind: str) -> Path:
        """The file of GET /examples/{direction}/{kind}.jpg; 404 when there is none."""
        info = await self.describe()
        example = info["directions"].get(direction, {}).get("example") or {}
        if kind not in example:
            raise ServiceError(404, f"no example {kind} for direction {direction!r}")
        return settings.model_dir / example[kind]

    async def run(
        self,
        direction: str,
        data: bytes,
        fmt: str,
        resolution: int | None,
        phases: Phases,
        strength: float = 1.0,
    ) -> bytes:
        """The whole translation of one image; raises ServiceError for refused requests."""
        info = await self.describe()
        if not info["ready"]:
            problems = "; ".join(info["problems"]) or "models are still loading"
            raise ServiceError(503, f"the service is not ready: {problems}")
        if direction not in info["directions"]:
            valid = sorted(info["directions"])
            raise ServiceError(
                404, f"unknown direction {direction!r}; this server has: {', '.join(valid)}"
            )
        described = info["directions"][direction]
        size = image_io.working_size(
            resolution, described["native_resolution"], settings.max_resolution
        )
        blend = strength < 1.0
        provenance = Provenance(direction, described["model"], described["version"])

        def decode_and_fit() -> image_io.Prepared:
            image, full_size = image_io.decode(data, settings.max_pixels, size, fmt)
            prepared = image_io.prepare(image, full_size, size)
            if blend:
                return image_io.with_original(prepared, data, settings.max_pixels, fmt)
            return prepared

        def restore_and_encode(translated: np.ndarray, prepared: image_io.Prepared) -> bytes:
            restored = image_io.restore(translated, prepared, strength)
            return image_io.encode(restored, fmt, provenance)

        try:
            with anyio.fail_after(settings.max_latency_ms / 1000):
                await self._work.acquire()
        except TimeoutError:
            raise ServiceError(503, "the server is overloaded; retry shortly") from None
        try:
            began = time.perf_counter()
            prepared = await anyio.to_thread.run_sync(decode_and_fit)
            began = phases.since("decode", began)
            item = GenerateItem(direction=direction, canvas=prepared.canvas)
            generated = await self.client.generate(item)
            phases.add("queue", generated.queue_s)
            phases.add("infer", generated.infer_s)
            began = phases.since("hop", began + generated.queue_s + generated.infer_s)
            canvas = np.asarray(generated.canvas)
            body = await anyio.to_thread.run_sync(restore_and_encode, canvas, prepared)
            phases.since("encode", began)
            return body
        finally:
            self._work.release()

    async def answer(
        self,
        ctx: bentoml.Context,
        direction: str,
        data: bytes,
        fmt_query: str | None,
        accept: str | None,
        resolution: str | None,
        strength: str | None = None,
    ) -> Response:
        """The translated image, or the error answer; never raises."""
        started = time.perf_counter()
        phases = phases_of(ctx.request.scope)
        try:
            fmt = image_io.pick_format(fmt_query, accept)
            asked = parse_resolution(resolution)
            body = await self.run(direction, data, fmt, asked, phases, parse_strength(strength))
        except Exception as error:
            if not isinstance(error, ServiceError):
                log.exception("translation failed")
                error = ServiceError(500, INTERNAL)
            # With a Context parameter BentoML copies ctx.response's status onto whatever the
            # API returns (and adds its headers), so the status is set there too.
            ctx.response.status_code = error.status
            return error_response(error)
        REQUEST_LATENCY.labels(direction).observe(time.perf_counter() - started)
        ctx.response.status_code = 200
        timing = phases.finish()
        return Response(body, media_type=image_io.FORMATS[fmt], headers={"Server-Timing": timing})

    @bentoml.api(route="/translate/{direction}")
    async def translate(
        self, body: bytes, /, ctx: bentoml.Context
    ) -> Annotated[Path, ContentType("image/*")]:
        """Translate the image in the request body; answer with the image (PNG by default)."""
        request = ctx.request
        return await self.answer(  # type: ignore[return-value]
            ctx,
            request.path_params["direction"],
            body,
            request.query_params.get("format"),
            request.headers.get("accept"),
            request.query_params.get("resolution"),
            request.query_params.get("strength"),
        )

    @bentoml.api(route="/translate")
    async def translate_image(
        self,
        image: Annotated[Path, ContentType("image/*")],
        direction: str,
        format: str = "png",
        resolution: int | None = None,
        strength: float = 1.0,
        ctx: bentoml.Context = None,  # type: ignore[assignment]
    ) -> Annotated[Path, ContentType("image/*")]:
        """The same translation for bentoml.SyncHTTPClient: image file in, image file out."""
        data = await anyio.to_thread.run_sync(Path(image).read_bytes)
        asked = None if resolution is None else str(resolution)
        return await self.answer(  # type: ignore[return-value]
            ctx, direction, data, format, None, asked, str(strength)
        )


def parse_strength(value: str | None) -> float:
    """?strength=: how much of the translation to show, 0 (the original) to 1 (all of it)."""
    if value is None:
        return 1.0
    try:
        strength = float(value)
    except ValueError:
        strength = math.nan
    if not 0.0 <= strength <= 1.0:  # also refuses nan
        raise ServiceError(422, f"strength must be a number from 0 to 1, got {value!r}")
    return strength


def parse_resolution(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ServiceError(400, f"resolution must be an integer, got {value!r}") from None


Translator.mount_asgi_app(routes.app, path="/")
# The first middleware added is the outermost: headers go on every answer, pages are served
# before the guard, and the guard sees every translate request.
Translator.add_asgi_middleware(routes.SecurityHeaders)
Translator.add_asgi_middleware(routes.Pages)
Translator.add_asgi_middleware(RequestGuard, settings=settings)
