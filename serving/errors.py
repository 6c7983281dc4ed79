"""Every refusal the service answers: one error type and one writer.

A `ServiceError` carries the HTTP status and a message a client can act on (never a server
path or raw exception text: the log keeps those). `error_response` is the only place that
turns one into a response: JSON `{"error": "..."}`, with `Retry-After` where retrying helps.
The request guard counts every answer, by outcome (`OUTCOMES`), in cyclegan_requests_total.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

RETRY_AFTER_S = 1
OUTCOMES = {
    400: "client_error",
    404: "client_error",
    406: "client_error",
    408: "client_timeout",
    413: "too_large",
    415: "client_error",
    422: "client_error",
    429: "overloaded",
    503: "overloaded",
}


class ServiceError(Exception):
    """A request the service refuses; `status` is the HTTP code, the message says why."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close  # the body was not read to its end: the connection cannot be reused

    @property
    def retry(self) -> bool:
        return self.status in (429, 503)


INTERNAL = "internal error; the server log has the details"


def error_response(error: ServiceError) -> JSONResponse:
    """The one writer of error answers."""
    headers = {}
    if error.retry:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if error.close:
        headers["Connection"] = "close"
    return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)
