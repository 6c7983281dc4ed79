"""BentoML 1.4's request-timeout middleware, replaced by a fixed subclass before BentoML builds
its apps.

BentoML builds each service's middleware stack in ServiceAppFactory.middlewares
(_bentoml_impl/server/app.py), importing `traffic.TimeoutMiddleware` from its module at that
moment, so replacing the module attribute is enough; its configuration has no setting for
it. tests/serving/test_bentoml_fixes.py fails if the replacement stops reaching BentoML's
apps. Upstream: bentoml/BentoML pull request 5670 ("propagate errors through
TimeoutMiddleware") fixes the hang below; drop this module once a release has it.

BentoML's middleware (504 when no answer has started in time) keeps a timer, and what it
holds, for the whole timeout after each request (+220 MiB in the front at 300 requests/s and
60 s), and when the app raises before answering it waits out the timeout (a 60 s hang, then
no answer). This one cancels its timer and lets errors through at once; its 504 carries the
service's security headers like every other answer.
"""

from __future__ import annotations

import math

import anyio
from bentoml._internal.server.http import traffic
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from serving.routes import SecurityHeaders


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
            await SecurityHeaders(JSONResponse(error, status_code=504))(scope, receive, send)


def install() -> None:
    traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc]
