"""Two BentoML 1.4 middlewares replaced by fixed subclasses, before BentoML builds its apps.

BentoML builds each service's middleware stack in ServiceAppFactory.middlewares
(_bentoml_impl/server/app.py and bentoml/_internal/server/base_app.py), importing these
classes from their modules at that moment, so replacing the module attributes is enough.
BentoML's configuration has no setting for either (traffic: timeout, max_concurrency;
metrics: enabled, namespace, duration buckets).

- Request metrics (bentoml_service_request_total and friends) are labelled with the raw path,
  so every junk path adds series: they get the route template instead.
- The request timeout (504 when no answer has started in time) keeps a timer, and what it
  holds, for the whole timeout after each request (measured: +220 MiB in the front at 300
  requests/s and 60 s), and when the app raises before answering it waits out the timeout
  (a 60 s hang, then 500): this one cancels its timer and lets errors through at once.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from bentoml._internal.server.http import instruments, traffic
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.prometheus import endpoint_label


class RouteLabelledTrafficMetrics(instruments.RunnerTrafficMetricsMiddleware):
    """BentoML's request metrics on a copy of the scope whose path is the route template;
    the app below gets the real path back."""

    REAL_PATH = "cyclegan.real_path"

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        super().__init__(self._with_real_path(app), **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "path": endpoint_label(scope["path"]), self.REAL_PATH: scope["path"]}
        await super().__call__(scope, receive, send)

    @classmethod
    def _with_real_path(cls, app: ASGIApp) -> ASGIApp:
        async def restore(scope: Scope, receive: Receive, send: Send) -> None:
            if cls.REAL_PATH in scope:
                scope = {**scope, "path": scope[cls.REAL_PATH]}
            await app(scope, receive, send)

        return restore


class RequestTimeout(traffic.TimeoutMiddleware):
    """504 when no answer has started within the timeout; nothing is left behind."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        with anyio.CancelScope(deadline=anyio.current_time() + self.timeout) as timer:

            async def answering(message: Message) -> None:
                timer.deadline = math.inf  # the answer has started: no timeout from here on
                await send(message)

            await self.app(scope, receive, answering)
        if timer.cancelled_caught:
            error = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(error, status_code=504)(scope, receive, send)


def install() -> None:
    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledTrafficMetrics  # type: ignore[misc]
    traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc]
