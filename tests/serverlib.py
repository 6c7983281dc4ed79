"""The real server for tests: small limits so that tests can cross them cheaply, and load that
runs until the server does what a test waits for. Probes of its processes and metrics are in
loadtest/probe.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadtest import server as _server
from loadtest.probe import Answer, closed_loop
from loadtest.server import ROOT, Server, stop_server, wait_until

TEST_ENV = {
    "CYCLEGAN_MAX_BYTES": "3000000",
    "CYCLEGAN_MAX_PIXELS": "4000000",
    "CYCLEGAN_MAX_RESOLUTION": "256",
    "CYCLEGAN_MAX_CONCURRENCY": "8",
    "CYCLEGAN_MAX_BATCH_SIZE": "8",
    "CYCLEGAN_MAX_LATENCY_MS": "2000",
    "CYCLEGAN_CLIENT_TIMEOUT_S": "3",
    "OMP_NUM_THREADS": "1",
}

__all__ = [
    "ROOT",
    "TEST_ENV",
    "Server",
    "load_until",
    "start_server",
    "stop_server",
    "wait_until",
]


def start_server(model_dir: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> Server:
    return _server.start_server(model_dir, workdir, {**TEST_ENV, **(extra_env or {})})


def load_until(
    server: Server,
    path: str,
    data: bytes,
    headers: dict[str, str],
    seen: Callable[[Answer], bool],
    clients: int,
    limit_s: float = 120,
) -> list[Answer]:
    """`clients` threads post `data` to `path` back to back until `seen(answer)` holds for an
    answer, then every answer. Overload happens at different moments on fast and
    slow machines, so tests wait for it to happen; `limit_s` only stops a run that never
    gets there (a failure)."""
    run = closed_loop(f"{server.url}{path}", data, clients, limit_s, headers=headers, until=seen)
    assert run.stopped, f"not seen within {limit_s:g} s of load"
    return run.answers
