"""Run the service as a subprocess on a free loopback port (for benchmarks and tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_url: str  # Prometheus metrics, on their own port

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(model_dir: Path, workdir: Path, env: dict[str, str] | None = None) -> Server:
    """`python -m serving` with CYCLEGAN_* settings from `env`; its output goes to a log file."""
    port, metrics_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"server-{port}.log"
    full_env = {
        **os.environ, **(env or {}),
        "CYCLEGAN_MODEL_DIR": str(model_dir), "CYCLEGAN_PORT": str(port),
        "CYCLEGAN_METRICS_PORT": str(metrics_port),
        "BENTOML_HOME": str(workdir / "bentoml"),
    }  # fmt: skip
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "serving"], cwd=ROOT, env=full_env, start_new_session=True,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Server(
        f"http://127.0.0.1:{port}", process, log, f"http://127.0.0.1:{metrics_port}/metrics"
    )


def wait_until(server: Server, path: str, status: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited ({server.process.returncode}):\n{server.log_text()[-3000:]}"
            )
        try:
            if httpx.get(server.url + path, timeout=2).status_code == status:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{server.url}{path} never answered {status}:\n{server.log_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """SIGTERM to the whole process group (BentoML's workers too), SIGKILL if it lingers."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
