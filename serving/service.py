"""The BentoML services: `Translator` (HTTP front) and `Generator` (batched inference).

    POST /translate/{direction}   body: image bytes (or a form's `image` field) -> image
    POST /translate               {image, direction, format}: for bentoml.SyncHTTPClient
    GET  /directions              what the server can do
    /livez /readyz /metrics       BentoML's probes and Prometheus metrics (+ this service's)

The front decodes each image once, fits it to the model's working canvas and hands a uint8
canvas to `Generator.generate`, whose adaptive batcher runs concurrent requests as one forward
pass. Settings come from CYCLEGAN_* environment variables (serving/settings.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import anyio
import bentoml
import numpy as np
from _bentoml_sdk import IODescriptor
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType
from starlette.responses import JSONResponse, Response

from serving import imaging, routes
from serving.guard import RequestGuard
from serving.metrics import IN_FLIGHT, REQUEST_LATENCY, REQUESTS
from serving.settings import get_settings

log = logging.getLogger("serving")
settings = get_settings()
RETRY_AFTER_S = "1"
GENERATE_ATTEMPTS = 3


class GenerateItem(IODescriptor):
    """One image on its way to the batcher (BentoML's base class knows numpy fields)."""

    direction: str
    canvas: np.ndarray  # (3, R, R) uint8
    sent_at: float  # time.time() when handed over, for the queue-wait metric


@bentoml.service(
    name="cyclegan-generator",
    workers=settings.workers,
    traffic={"timeout": settings.request_timeout_s},
)
class Generator:
    """Loads every model package once per process and runs batches through its backend."""

    def __init__(self) -> None:
        from serving.registry import ModelRegistry

        self.registry = ModelRegistry.load(settings)

    def __is_ready__(self) -> bool:
        return self.registry.ready

    # CYCLEGAN_MAX_BATCH_SIZE=1 turns batching off (BentoML's batcher needs at least 2).
    @bentoml.api(
        batchable=settings.max_batch_size > 1,
        max_batch_size=max(2, settings.max_batch_size),
        max_latency_ms=settings.max_latency_ms,
    )
    def generate(self, items: list[GenerateItem]) -> list[np.ndarray]:
        """Same-direction items run together; the order of the answers is the order of `items`."""
        outputs: list[np.ndarray | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.direction, []).append(index)
        for direction, indices in groups.items():
            results = self.registry.translate(
                direction, [items[i].canvas for i in indices], [items[i].sent_at for i in indices]
            )
            for i, result in zip(indices, results, strict=True):
                outputs[i] = result
        return [out for out in outputs if out is not None]

    @bentoml.api
    def describe(self) -> dict[str, Any]:
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
                }
                for name, info in self.registry.directions.items()
            },
        }


OUTCOMES = {400: "client_error", 404: "client_error", 406: "client_error", 413: "too_large"}


@bentoml.service(
    name="cyclegan-translator",
    traffic={"timeout": settings.request_timeout_s},
    http={"port": settings.port},
)
class Translator:
    generator = bentoml.depends(Generator)

    def __init__(self) -> None:
        self._directions: dict[str, Any] | None = None

    async def describe(self) -> dict[str, Any]:
        if self._directions is None or not self._directions["ready"]:
            self._directions = await self.generator.to_async.describe()
        return self._directions

    async def __is_ready__(self) -> bool:
        try:
            return bool((await self.describe())["ready"])
        except Exception as error:  # the generator is still starting
            log.info("not ready yet: %s", error)
            return False

    async def directions(self) -> dict[str, Any]:
        """What GET /directions answers (serving/routes.py)."""
        info = await self.describe()
        return {
            "directions": info["directions"],
            "ready": info["ready"],
            "limits": {
                "max_bytes": settings.max_bytes,
                "max_pixels": settings.max_pixels,
                "max_resolution": settings.max_resolution,
                "max_batch_size": settings.max_batch_size,
                "formats": list(imaging.FORMATS),
            },
        }

    async def run(self, direction: str, data: bytes, fmt: str, resolution: int | None) -> bytes:
        """The whole translation of one image; raises ImageRequestError for bad requests."""
        info = await self.describe()
        if not info["ready"]:
            problems = "; ".join(info["problems"]) or "models are still loading"
            raise imaging.ImageRequestError(503, f"the service is not ready: {problems}")
        if direction not in info["directions"]:
            valid = sorted(info["directions"])
            raise imaging.ImageRequestError(
                404, f"unknown direction {direction!r}; this server has: {', '.join(valid)}"
            )
        native = info["directions"][direction]["native_resolution"]
        size = imaging.working_size(resolution, native, settings.max_resolution)

        def decode_and_fit() -> imaging.Prepared:
            return imaging.prepare(imaging.decode(data, settings.max_pixels), size)

        prepared = await anyio.to_thread.run_sync(decode_and_fit)
        item = GenerateItem(direction=direction, canvas=prepared.canvas, sent_at=time.time())
        translated = await self.generate(item)

        def restore_and_encode() -> bytes:
            return imaging.encode(imaging.restore(translated, prepared), fmt)

        return await anyio.to_thread.run_sync(restore_and_encode)

    async def generate(self, item: GenerateItem) -> np.ndarray:
        """One image through the batcher. A connection the generator closed as it was reused
        (a keep-alive race) is retried: generate is a pure function, so this is safe."""
        for attempt in range(1, GENERATE_ATTEMPTS + 1):
            try:
                (translated,) = await self.generator.to_async.generate([item])
                return np.asarray(translated)
            except aiohttp.ClientConnectionError as error:
                if attempt == GENERATE_ATTEMPTS:
                    raise imaging.ImageRequestError(
                        503, f"the generator is unreachable: {error}"
                    ) from None
                log.info("generator connection dropped (%s); retrying", error)
            except ServiceUnavailable:
                # The batcher sheds requests it cannot start within max_latency_ms.
                raise imaging.ImageRequestError(
                    503, "the server is overloaded; retry shortly"
                ) from None
        raise AssertionError("unreachable")

    async def handle(
        self,
        direction: str,
        data: bytes,
        fmt_query: str | None,
        accept: str | None,
        resolution: str | None,
    ) -> tuple[int, bytes | str, str]:
        """(status, body, format or error message) with metrics; never raises."""
        started = time.perf_counter()
        IN_FLIGHT.inc()
        outcome = "ok"
        try:
            fmt = imaging.pick_format(fmt_query, accept)
            try:
                asked = int(resolution) if resolution is not None else None
            except ValueError:
                raise imaging.ImageRequestError(
                    400, f"resolution must be an integer, got {resolution!r}"
                ) from None
            body = await self.run(direction, data, fmt, asked)
            return 200, body, fmt
        except imaging.ImageRequestError as error:
            outcome = OUTCOMES.get(
                error.status, "overloaded" if error.status in (429, 503) else "error"
            )
            return error.status, b"", str(error)
        except Exception as error:
            outcome = "error"
            log.exception("translation failed")
            return 500, b"", f"internal error: {type(error).__name__}"
        finally:
            IN_FLIGHT.dec()
            # unknown directions get one label value, so a scanner cannot grow the label set
            known = self._directions is not None and direction in self._directions["directions"]
            label = direction if known else "unknown"
            REQUESTS.labels(label, outcome).inc()
            if outcome == "ok":
                REQUEST_LATENCY.labels(label).observe(time.perf_counter() - started)

    @bentoml.api(route="/translate/{direction}")
    async def translate(
        self, body: bytes, /, ctx: bentoml.Context
    ) -> Annotated[Path, ContentType("image/*")]:
        """Translate the image in the request body; answer with the image (PNG by default)."""
        request = ctx.request
        status, payload, detail = await self.handle(
            request.path_params["direction"],
            body,
            request.query_params.get("format"),
            request.headers.get("accept"),
            request.query_params.get("resolution"),
        )
        return self.respond(ctx, status, payload, detail)

    @bentoml.api(route="/translate")
    async def translate_image(
        self,
        image: Annotated[Path, ContentType("image/*")],
        direction: str,
        format: str = "png",
        resolution: int | None = None,
        ctx: bentoml.Context = None,  # type: ignore[assignment]
    ) -> Annotated[Path, ContentType("image/*")]:
        """The same translation for bentoml.SyncHTTPClient: image file in, image file out."""
        data = await anyio.to_thread.run_sync(Path(image).read_bytes)
        asked = None if resolution is None else str(resolution)
        status, payload, detail = await self.handle(direction, data, format, None, asked)
        return self.respond(ctx, status, payload, detail)

    @staticmethod
    def respond(ctx: bentoml.Context, status: int, payload: bytes, detail: str) -> Response:
        # With a Context parameter BentoML copies ctx.response's status onto whatever the API
        # returns (and adds its headers), so the status is set there.
        ctx.response.status_code = status
        if status != 200:
            headers = {"Retry-After": RETRY_AFTER_S} if status in (429, 503) else None
            return JSONResponse({"error": detail}, status_code=status, headers=headers)
        return Response(payload, media_type=imaging.FORMATS[detail])


Translator.mount_asgi_app(routes.app, path="/")
Translator.add_asgi_middleware(routes.WebPage)
Translator.add_asgi_middleware(
    RequestGuard,
    max_bytes=settings.max_bytes,
    max_concurrency=settings.max_concurrency,
)
