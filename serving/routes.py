"""Plain GET routes beside the BentoML APIs (BentoML's own APIs are POST only).

GET /directions answers from the service; GET / is the web page. BentoML's own Swagger UI
also lives at /, so `WebPage` (a middleware, ahead of BentoML's routes) serves the page there
and passes GET /docs on to BentoML's index instead.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

PAGE = Path(__file__).parent / "static" / "index.html"


async def directions(request: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    try:
        return JSONResponse(await service.directions())
    except Exception as error:  # the generator is still starting
        return JSONResponse(
            {"error": f"not ready: {error}"}, status_code=503, headers={"Retry-After": "1"}
        )


app = Starlette(routes=[Route("/directions", directions, methods=["GET"])])


class WebPage:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.page = HTMLResponse(PAGE.read_text())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            if scope["path"] == "/":
                return await self.page(scope, receive, send)
            if scope["path"] == "/docs":
                scope = {**scope, "path": "/", "raw_path": b"/"}
        await self.app(scope, receive, send)
