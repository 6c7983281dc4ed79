"""The front's side of the hop to the generator: what it serves (cached once ready), whether it
is ready, and one image through it with bounded retries.

With CYCLEGAN_GENERATOR=worker the generator is a separate BentoML service (serving/service.py,
`BatchedGenerator`) that may be starting, restarting after a crash, or shedding load; every one
of those becomes a 503 the client can retry, never a 500 or a hang. (In the front's own
process it is serving/generator.py's `InProcessGenerator`.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from bentoml.exceptions import ServiceUnavailable

from serving.errors import ServiceError
from serving.prometheus import KNOWN_DIRECTIONS

if TYPE_CHECKING:
    from serving.generator import Generated, GenerateItem

log = logging.getLogger("serving")

READY_CHECK_TIMEOUT_S = 3.0  # /readyz waits this long for the generator (probes allow more)
CONNECT_ATTEMPTS = 4  # generator calls that could not connect (e.g. it is restarting)
BACKOFF_S = 0.25  # first pause between attempts; it doubles each time


class GeneratorClient:
    def __init__(self, generator: Any) -> None:
        self.generator = generator  # BentoML's dependency handle on BatchedGenerator
        self._described: dict[str, Any] | None = None
        self._not_ready_reason: str | None = None

    async def describe(self) -> dict[str, Any]:
        """The generator's description, cached once it is ready; 503 while it cannot answer."""
        if self._described is None or not self._described["ready"]:
            try:
                self._described = await self.generator.to_async.describe()
            except Exception as error:
                log.warning("the generator cannot describe itself yet: %r", error)
                raise ServiceError(
                    503, "the service is not ready: the generator is starting"
                ) from None
            if self._described["ready"]:
                KNOWN_DIRECTIONS.update(self._described["directions"])
        return self._described

    async def readiness(self) -> str | None:
        """None when ready, else why not. Asks the generator each time (it may restart)."""
        try:
            with anyio.fail_after(READY_CHECK_TIMEOUT_S):
                info = await self.generator.to_async.describe()
            reason = None if info["ready"] else "; ".join(info["problems"]) or "models loading"
        except Exception as error:
            log.debug("readiness check: %r", error)
            reason = "the generator is not answering (starting or restarting)"
        if reason != self._not_ready_reason:  # log changes, not every probe
            if reason:
                log.warning("not ready: %s", reason)
            else:
                log.info("ready")
            self._not_ready_reason = reason
        return reason

    async def generate(self, item: GenerateItem) -> Generated:
        """One image through the generator, with bounded retries and backoff.

        A connection that could not be made (the generator is restarting) is retried up to
        CONNECT_ATTEMPTS times, pausing BACKOFF_S, then twice that, and so on. One dropped
        after the image was sent (a keep-alive race, or the generator died mid-batch) is
        retried once only, so an image that kills the generator cannot do it again and again.
        """
        dropped = 0
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return await self.generator.to_async.generate(item=item)
            except aiohttp.ClientConnectorError as error:  # never connected: nothing was sent
                reason = error
            except aiohttp.ClientError as error:  # sent, then the connection or answer broke
                dropped += 1
                reason = error
                if dropped > 1:
                    break
            except ServiceUnavailable:  # the batcher shed it: it waited past max_latency_ms
                raise ServiceError(503, "the server is overloaded; retry shortly") from None
            except TimeoutError:
                raise ServiceError(503, "the generator did not answer in time") from None
            if attempt + 1 < CONNECT_ATTEMPTS:
                log.warning("generator call failed (%r); retry %d", reason, attempt + 1)
                await asyncio.sleep(BACKOFF_S * 2**attempt)
        log.error("generator unreachable: %r", reason)
        raise ServiceError(503, "the generator is unavailable (restarting?); retry shortly")
