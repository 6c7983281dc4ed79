"""Plain GET routes beside the BentoML APIs (BentoML's own APIs are POST only)."""

from __future__ import annotations

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def directions(request: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    try:
        return JSONResponse(await service.directions())
    except Exception as error:  # the generator is still starting
        return JSONResponse(
            {"error": f"not ready: {error}"}, status_code=503, headers={"Retry-After": "1"}
        )


app = Starlette(routes=[Route("/directions", directions, methods=["GET"])])
