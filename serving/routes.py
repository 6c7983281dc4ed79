"""Plain GET routes beside the BentoML APIs (BentoML's own APIs are POST only), and headers.

`Pages` (a middleware ahead of BentoML's routes) serves the web page at / and its files under
/static/, the packages' example photos under /examples/, the OpenAPI document at /docs.json
(serving/openapi.py), and /readyz with the reason when not ready; it passes GET /docs on to
BentoML's Swagger page.
GET /directions is a small Starlette app mounted beside the APIs. `SecurityHeaders` puts
Content-Security-Policy (with frame-ancestors), X-Content-Type-Options and friends on every
answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import bentoml
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import ServiceError, error_response
from serving.openapi import DOCUMENT

STATIC = Path(__file__).parent / "static"
EXAMPLE_PATH = re.compile(r"/examples/(?P<direction>[a-z0-9_-]{1,64})/(?P<kind>input|output)\.jpg")
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}

# The page loads only its own script and style, shows blob: images, talks only to this server.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# BentoML's Swagger page: its own scripts and styles (its inline tag-manager script is blocked).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# Everything else is data (JSON, images, metrics): nothing in it may run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


async def directions(request: Request) -> Response:
    service = bentoml.get_current_service()
    try:
        return JSONResponse(await service.directions())
    except ServiceError as error:
        return error_response(error)


app = Starlette(routes=[Route("/directions", directions, methods=["GET"])])


class Pages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            response = await self.page(scope["path"])
            if response is not None:
                return await response(scope, receive, send)
            if scope["path"] == "/docs":
                scope = {**scope, "path": "/", "raw_path": b"/"}
        await self.app(scope, receive, send)

    async def page(self, path: str) -> Response | None:
        if path == "/":
            return FileResponse(STATIC / "index.html", media_type="text/html")
        name = path.removeprefix("/static/")
        if path.startswith("/static/") and name in PAGE_FILES:
            return FileResponse(STATIC / name, media_type=PAGE_FILES[name])
        if path == "/docs.json":
            return JSONResponse(DOCUMENT)
        example = EXAMPLE_PATH.fullmatch(path)
        if example:
            service = bentoml.get_current_service()
            try:
                file = await service.example_file(example["direction"], example["kind"])
            except ServiceError as error:
                return error_response(error)
            return FileResponse(file, media_type="image/jpeg")
        if path == "/readyz":
            reason = await bentoml.get_current_service().readiness()
            if reason is None:
                return JSONResponse({"ready": True})
            return error_response(ServiceError(503, f"not ready: {reason}"))
        return None


def csp_for(path: str) -> str:
    if path in ("/", "/static/app.js", "/static/style.css"):
        return PAGE_CSP
    if path == "/docs" or path.startswith("/static_content/"):
        return DOCS_CSP
    return API_CSP


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = csp_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)
