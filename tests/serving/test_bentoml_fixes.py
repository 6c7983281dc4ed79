"""The fixed BentoML middlewares (serving/bentoml_fixes.py), without a server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from serving.bentoml_fixes import RequestTimeout
from serving.prometheus import endpoint_label

SCOPE = {"type": "http", "method": "GET", "path": "/x", "headers": []}


async def receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def run(app: Any, timeout: float) -> tuple[list[dict[str, Any]], int]:
    """Messages sent, and the live timers still scheduled on the loop afterwards."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> int:
        await RequestTimeout(app, timeout=timeout)(SCOPE, receive, send)
        scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        return sum(not timer.cancelled() for timer in scheduled)

    return sent, asyncio.run(main())


def test_no_answer_in_time_is_504() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(30)

    sent, _ = run(slow, 0.2)
    assert sent[0]["status"] == 504


def test_an_answer_leaves_no_timer_behind() -> None:
    """BentoML's own kept each request's timer for the whole timeout (memory)."""

    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent, timers = run(quick, 60)
    assert sent[0]["status"] == 200 and timers == 0


def test_an_error_passes_at_once() -> None:
    """BentoML's own waited out the whole timeout when the app raised before answering."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("broken")

    started = time.monotonic()
    with pytest.raises(RuntimeError):
        run(broken, 30)
    assert time.monotonic() - started < 10


def test_endpoint_labels_are_bounded() -> None:
    assert endpoint_label("/translate/anything") == "/translate/{direction}"
    assert endpoint_label("/translate") == "/translate"
    assert endpoint_label("/static/app.js") == "/static/{file}"
    assert endpoint_label("/etc/passwd") == "unknown"
