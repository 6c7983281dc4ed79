"""The service's Prometheus metrics on their own port (CYCLEGAN_METRICS_PORT), apart from the API.

Only this project's bounded `cyclegan_*` series are served: BentoML's own metrics are off
(each service says `metrics: enabled: false`), so its /metrics route is gone from the public
port. BentoML runs every worker with PROMETHEUS_MULTIPROC_DIR set, so the front and the
generator write their values there, and this server, started once in the front's process,
reads them all at each scrape.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("serving")


def metrics_registry() -> CollectorRegistry:
    """Every process's values where BentoML gave the workers a directory, else this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def serve_metrics(host: str, port: int) -> bool:
    """Serve GET /metrics on host:port from a daemon thread; False when the port is taken."""
    try:
        start_http_server(port, addr=host, registry=metrics_registry())
    except OSError as error:
        log.error("metrics not served on %s:%d: %s", host, port, error)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True
