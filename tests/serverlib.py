"""The real server for tests: small limits so that tests can cross them cheaply."""

from __future__ import annotations

from pathlib import Path

from loadtest import server as _server
from loadtest.server import ROOT, Server, stop_server, wait_until

TEST_ENV = {
    "CYCLEGAN_MAX_BYTES": "3000000",
    "CYCLEGAN_MAX_PIXELS": "4000000",
    "CYCLEGAN_MAX_RESOLUTION": "256",
    "CYCLEGAN_MAX_CONCURRENCY": "8",
    "CYCLEGAN_MAX_BATCH_SIZE": "8",
    "CYCLEGAN_MAX_LATENCY_MS": "2000",
    "OMP_NUM_THREADS": "1",
}

__all__ = ["ROOT", "TEST_ENV", "Server", "start_server", "stop_server", "wait_until"]


def start_server(model_dir: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> Server:
    return _server.start_server(model_dir, workdir, {**TEST_ENV, **(extra_env or {})})
