"""The service's Prometheus metrics on their own port (CYCLEGAN_METRICS_PORT), apart from the API.

Only this project's bounded `cyclegan_*` series are served: BentoML's own metrics are off
(each service says `metrics: enabled: false`), so its /metrics route is gone from the public
port. BentoML runs every worker with PROMETHEUS_MULTIPROC_DIR set, so the front and the
generator write their values there, and this server, started once in the front's process,
reads them all at each scrape. A worker that was killed cannot say it is gone, so the front
forgets the live gauges of dead processes when it starts (after BentoML restarts it, say).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger("serving")


def metrics_registry() -> CollectorRegistry:
    """Every process's values where BentoML gave the workers a directory, else this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def forget_dead_processes(directory: Path) -> list[int]:
    """Drop the `livesum` gauges (requests in flight, image memory) of processes that are no
    longer running: a SIGKILLed worker's would otherwise count for ever. Returns their pids."""
    dead = set()
    for file in directory.glob("gauge_live*_*.db"):
        match = re.fullmatch(r"gauge_live\w+_(\d+)\.db", file.name)
        if match and not alive(int(match[1])):
            dead.add(int(match[1]))
    for pid in sorted(dead):
        mark_process_dead(pid, str(directory))
    return sorted(dead)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def serve_metrics(host: str, port: int) -> bool:
    """Serve GET /metrics on host:port from a daemon thread; False when the port is taken."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        dead = forget_dead_processes(Path(directory))
        if dead:
            log.info("forgot the live gauges of exited processes %s", dead)
    try:
        start_http_server(port, addr=host, registry=metrics_registry())
    except OSError as error:
        log.error("metrics not served on %s:%d: %s", host, port, error)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True
