"""The real server for tests: small limits so that tests can cross them cheaply, and probes
of its processes (memory, the generator worker) and its metrics."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from loadtest import server as _server
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
    "generator_workers",
    "load_until",
    "metric",
    "open_connection",
    "start_server",
    "stop_server",
    "tree_rss",
    "wait_until",
]


def start_server(model_dir: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> Server:
    return _server.start_server(model_dir, workdir, {**TEST_ENV, **(extra_env or {})})


def load_until(
    server: Server,
    path: str,
    data: bytes,
    headers: dict[str, str],
    seen: Callable[[httpx.Response], bool],
    clients: int,
    limit_s: float = 120,
) -> list[httpx.Response]:
    """`clients` threads post `data` to `path` back to back until `seen(answer)` holds for an
    answer, then every answer. Overload happens at different moments on fast and
    slow machines, so tests wait for it to happen; `limit_s` only stops a run that never
    gets there (a failure)."""
    deadline = time.monotonic() + limit_s
    done = threading.Event()

    def client(_: int) -> list[httpx.Response]:
        answers = []
        with httpx.Client(timeout=90) as session:
            while not done.is_set() and time.monotonic() < deadline:
                answer = session.post(f"{server.url}{path}", content=data, headers=headers)
                answers.append(answer)
                if seen(answer):
                    done.set()
        return answers

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = [a for batch in pool.map(client, range(clients)) for a in batch]
    assert done.is_set(), f"not seen within {limit_s:g} s of load"
    return answers


def processes(server: Server) -> list[psutil.Process]:
    root = psutil.Process(server.process.pid)
    return [root, *root.children(recursive=True)]


def tree_rss(server: Server) -> int:
    """Resident memory of the server and all its workers, in bytes."""
    total = 0
    for process in processes(server):
        with contextlib.suppress(psutil.Error):  # a worker that just exited
            total += process.memory_info().rss
    return total


def generator_workers(server: Server) -> list[psutil.Process]:
    """The generator service's worker processes (BentoML names the service on the command line)."""
    found = []
    for process in processes(server):
        try:
            if "cyclegan-generator" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            pass
    return found


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def open_connection(
    server: Server, request: bytes, receive_buffer: int | None = None
) -> socket.socket:
    """A raw loopback connection that has sent `request` (headers, maybe part of a body)."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer is not None:  # a slow reader: the kernel buffers little of the answer
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock
