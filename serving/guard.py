"""An ASGI middleware in front of the translate routes: limits and request shape.

- More than `max_concurrency` translations in flight: 429 with Retry-After.
- A body over `max_bytes` (by Content-Length, or counted while reading): 413, read no further.
- POST /translate/{direction} with a browser form: the form's `image` file becomes the raw
  body, so the API sees the same bytes either way.
- POST /translate (the client API) takes only multipart forms whose `image` is a file: a
  JSON body or a string field would make BentoML read a path or fetch a URL on the server.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestGuard:
    def __init__(self, app: ASGIApp, max_bytes: int, max_concurrency: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith("/translate")
        ):
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_concurrency:
            return await reply(send, 429, "too many requests in flight; retry shortly", retry=True)
        self.in_flight += 1
        try:
            await self.guarded(scope, receive, send, path)
        finally:
            self.in_flight -= 1

    async def guarded(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await reply(send, 413, self.too_large(int(declared)))
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await reply(send, 413, self.too_large(len(body)))
            if not message.get("more_body", False):
                break
        if not body:  # BentoML would read an empty body as "{}"
            return await reply(send, 400, "the request body is empty: send the image bytes")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_form = content_type in (b"multipart/form-data", b"application/x-www-form-urlencoded")
        if path == "/translate":
            if not is_form:
                return await reply(
                    send, 415, "POST /translate takes a multipart form (image, direction)"
                )
            if isinstance(await form_image(scope, bytes(body)), str):
                return await reply(send, 400, "the form's 'image' field must be a file upload")
        elif is_form:
            image = await form_image(scope, bytes(body))
            if not isinstance(image, UploadFile):
                return await reply(send, 400, "the form needs a file field named 'image'")
            body = bytearray(await image.read())
            media = (image.content_type or "application/octet-stream").encode()
            scope = with_headers(
                scope, {b"content-type": media, b"content-length": str(len(body)).encode()}
            )
        await self.app(scope, replay(bytes(body)), send)

    def too_large(self, size: int) -> str:
        return f"the request body is {size} bytes or more; the limit is {self.max_bytes}"


async def form_image(scope: Scope, body: bytes) -> UploadFile | str | None:
    """The form's `image` field (a file, a string or None)."""
    request = Request(scope, replay(body))
    form = await request.form(max_files=1, max_fields=16)
    value = form.get("image")
    return value if isinstance(value, UploadFile | str) else None


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def with_headers(scope: Scope, replace: dict[bytes, bytes]) -> Scope:
    kept = [(k, v) for k, v in scope["headers"] if k not in replace]
    return {**scope, "headers": kept + list(replace.items())}


async def reply(send: Send, status: int, message: str, retry: bool = False) -> None:
    body = json.dumps({"error": message}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
