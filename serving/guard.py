"""An ASGI middleware in front of the translate routes: admission, limits, timeouts, counting.

For each POST /translate... request, in this order:
- The body is read first, each part within `client_timeout_s` and all of it before the
  request's deadline, else 408; more than `max_bytes` (declared or counted): 413. Only then
  does the request count as in flight, so idle uploads hold no slot.
- A browser form on POST /translate/{direction} must hold exactly one `image` field, a file;
  it becomes the raw body. POST /translate (BentoML's client API) takes only such forms: a
  JSON body or a text field would make BentoML read a path or fetch a URL on the server.
- More than `max_concurrency` in flight: 429. An image over `max_pixels` (from its header):
  413. Not enough of the image-memory budget left for its pixels: 503. Both with Retry-After
  where retrying helps.
- The answer is sent in parts, each within `client_timeout_s`: a slow reader holds memory
  (counted in the budget) but no in-flight slot, and is dropped when too slow.
- No answer started by the deadline (`request_timeout_s` less a second): 503, before
  BentoML's own timeout would answer 504.
Every answer is counted once in cyclegan_requests_total{direction, outcome}, whoever wrote it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import anyio
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import image_io
from serving.errors import INTERNAL, OUTCOMES, ServiceError, error_response
from serving.phases import SCOPE_KEY, Phases
from serving.prometheus import IMAGE_MEMORY, IN_FLIGHT, REQUESTS, direction_label
from serving.settings import MIB, PEAK_BYTES_PER_PIXEL, ServiceSettings

log = logging.getLogger(__name__)
CHUNK = 256 * 1024  # answers are sent in parts of this size, each within client_timeout_s
DEADLINE_MARGIN_S = 1.0
FORMS = (b"multipart/form-data", b"application/x-www-form-urlencoded")


class ClientGone(Exception):
    """The client disconnected or stopped reading; nothing more can be sent."""


class Exchange:
    """One request's answer: its status, the count in the metrics, a paced body."""

    def __init__(self, scope: Scope, send: Send, client_timeout_s: float) -> None:
        self.scope = scope
        self.raw_send = send
        self.client_timeout_s = client_timeout_s
        self.direction: str | None = None
        self.started = False
        self.on_start: list[Any] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            status = message["status"]
            outcome = "ok" if status < 400 else OUTCOMES.get(status, "error")
            REQUESTS.labels(direction_label(self.direction), outcome).inc()
            for callback in self.on_start:
                callback()
            await self.paced(message)
        elif message["type"] == "http.response.body" and len(message.get("body", b"")) > CHUNK:
            body, more = message["body"], message.get("more_body", False)
            for offset in range(0, len(body), CHUNK):
                last = offset + CHUNK >= len(body)
                part = body[offset : offset + CHUNK]
                await self.paced({**message, "body": part, "more_body": more or not last})
        else:
            await self.paced(message)

    async def paced(self, message: Message) -> None:
        """Send one message; the server waits for the client to read the last ones first."""
        try:
            with anyio.fail_after(self.client_timeout_s):
                await self.raw_send(message)
        except TimeoutError:
            raise ClientGone(f"the client read nothing for {self.client_timeout_s} s") from None
        except OSError as error:
            raise ClientGone(str(error)) from None

    async def refuse(self, error: ServiceError) -> None:
        if not self.started:
            await error_response(error)(self.scope, ignore_receive, self.send)


class MemoryBudget:
    """Bytes reserved for images in flight in this process; a reservation fits or fails."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def reserve(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        IMAGE_MEMORY.inc(size)
        return True

    def release(self, size: int) -> None:
        self.used -= size
        IMAGE_MEMORY.dec(size)


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings
        self.in_flight = 0
        self.memory = MemoryBudget(settings.image_memory_mb * MIB)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith("/translate")
        ):
            return await self.app(scope, receive, send)
        exchange = Exchange(scope, send, self.settings.client_timeout_s)
        if path.startswith("/translate/"):
            exchange.direction = path.removeprefix("/translate/")
        deadline = anyio.current_time() + self.settings.request_timeout_s - DEADLINE_MARGIN_S
        try:
            await self.guarded(scope, receive, exchange, deadline)
        except ServiceError as error:
            with contextlib.suppress(ClientGone):  # nobody left to tell
                await exchange.refuse(error)
        except ClientGone as reason:
            log.info("dropped %s %s: %s", scope["method"], path, reason)
        except Exception:  # never let an error escape: BentoML's timeout layer would hang on it
            log.exception("the request guard failed on %s", path)
            with contextlib.suppress(ClientGone):
                await exchange.refuse(ServiceError(500, INTERNAL))

    async def guarded(
        self, scope: Scope, receive: Receive, exchange: Exchange, deadline: float
    ) -> None:
        phases = scope[SCOPE_KEY] = Phases()
        body = await self.read_body(scope, receive, deadline)
        phases.since("read", phases.started)
        if not body:  # BentoML would read an empty body as "{}"
            raise ServiceError(400, "the request body is empty: send the image bytes")
        scope, body, image = await self.reshape(scope, body, exchange)
        if self.in_flight >= self.settings.max_concurrency:
            raise ServiceError(429, "too many requests in flight; retry shortly")
        size = image_io.peek_size(image)
        pixels = size[0] * size[1] if size else 0
        if size:
            image_io.check_pixels(*size, self.settings.max_pixels)
        cost = len(body) + pixels * PEAK_BYTES_PER_PIXEL
        if not self.memory.reserve(cost):
            raise ServiceError(503, "the server is busy with other large images; retry shortly")
        self.in_flight += 1
        IN_FLIGHT.inc()
        counted = True

        def answer_started() -> None:  # the work is done: the slot is free for the next one
            nonlocal counted
            if counted:
                counted = False
                self.in_flight -= 1
                IN_FLIGHT.dec()

        exchange.on_start.append(answer_started)
        try:
            with anyio.CancelScope(deadline=deadline) as work:
                exchange.on_start.append(lambda: setattr(work, "deadline", math.inf))
                await self.app(scope, replay(body, receive), exchange.send)
            if work.cancelled_caught and not exchange.started:
                raise ServiceError(503, "the server could not finish in time; retry shortly")
        finally:
            answer_started()
            self.memory.release(cost)

    async def read_body(self, scope: Scope, receive: Receive, deadline: float) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length")
        limit = self.settings.max_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ServiceError(413, too_large(int(declared), limit), close=True)
        body = bytearray()
        while True:
            wait = min(self.settings.client_timeout_s, deadline - anyio.current_time())
            try:
                with anyio.fail_after(max(wait, 0)):
                    message = await receive()
            except TimeoutError:
                raise ServiceError(
                    408,
                    f"the request body did not arrive in time (each part within "
                    f"{self.settings.client_timeout_s:g} s)",
                    close=True,
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientGone("the client disconnected during the upload")
            body += message.get("body", b"")
            if len(body) > limit:
                raise ServiceError(413, too_large(len(body), limit), close=True)
            if not message.get("more_body", False):
                return bytes(body)

    async def reshape(
        self, scope: Scope, body: bytes, exchange: Exchange
    ) -> tuple[Scope, bytes, bytes]:
        """(scope, body for the app, the image's bytes); a form's file becomes the raw body."""
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        media = content_type.split(b";")[0].strip().lower()
        if media == b"application/vnd.bentoml+pickle":  # BentoML would unpickle it
            raise ServiceError(415, "pickled bodies are not accepted; send the image bytes")
        is_form = media in FORMS
        if scope["path"] == "/translate":
            if not is_form:
                raise ServiceError(415, "POST /translate takes a multipart form (image, direction)")
            form = await parse_form(scope, body)
            try:
                image = await form_image(form)
                direction = form.getlist("direction")
                exchange.direction = direction[0] if len(direction) == 1 else None
            finally:
                await form.close()
            return scope, body, image
        if not is_form:
            return scope, body, body
        form = await parse_form(scope, body)
        try:
            image = await form_image(form)
            media = next(
                (v.content_type for v in form.getlist("image") if isinstance(v, UploadFile)), None
            )
        finally:
            await form.close()
        headers = {
            b"content-type": (media or "application/octet-stream").encode(),
            b"content-length": str(len(image)).encode(),
        }
        return with_headers(scope, headers), image, image


def too_large(size: int, limit: int) -> str:
    return f"the request body is {size} bytes or more; the limit is {limit}"


async def parse_form(scope: Scope, body: bytes) -> FormData:
    try:
        return await Request(scope, replay(body)).form(max_files=1, max_fields=16)
    except HTTPException as error:  # Starlette's form errors, e.g. "Missing boundary in multipart."
        raise ServiceError(400, f"the form could not be read: {error.detail}") from None
    except (MultiPartException, ValueError, KeyError) as error:
        raise ServiceError(400, f"the form could not be read: {error}") from None


async def form_image(form: FormData) -> bytes:
    """The bytes of the form's one `image` field, which must be a file upload."""
    values = form.getlist("image")
    if len(values) != 1 or not isinstance(values[0], UploadFile):
        raise ServiceError(400, "the form needs exactly one 'image' field, and it must be a file")
    return await values[0].read()


def replay(body: bytes, then: Receive | None = None) -> Receive:
    """A receive that gives `body` once; afterwards it waits on `then` (the real client), so
    a disconnect is still seen, or says "disconnect" when there is none."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def ignore_receive() -> Message:
    return {"type": "http.disconnect"}


def with_headers(scope: Scope, replace: dict[bytes, bytes]) -> Scope:
    kept = [(k, v) for k, v in scope["headers"] if k not in replace]
    return {**scope, "headers": kept + list(replace.items())}
