"""The service's Prometheus metrics (besides BentoML's own), in base units, with bounded labels.

Created with prometheus_client directly; BentoML runs its workers with
PROMETHEUS_MULTIPROC_DIR set and serves every process's values at /metrics, so gauges name
their multiprocess mode. Label values never come straight from a request: directions are
known names or "unknown", and BentoML's own request metrics are labelled by route (see
`RouteLabelledTrafficMetrics`), so junk paths cannot grow the number of series.
"""

from __future__ import annotations

from typing import Any

from bentoml._internal.server.http import instruments
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

REQUESTS = Counter(
    "cyclegan_requests_total",
    "Translation requests by direction and outcome "
    "(ok, client_error, client_timeout, too_large, overloaded, error)",
    ["direction", "outcome"],
)
REQUEST_LATENCY = Histogram(
    "cyclegan_request_duration_seconds",
    "End-to-end time of a translation request in the service (decode to encode)",
    ["direction"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "cyclegan_in_flight_requests",
    "Translation requests being worked on now (body received, answer not yet started)",
    multiprocess_mode="livesum",
)
IMAGE_MEMORY = Gauge(
    "cyclegan_image_memory_bytes",
    "Memory reserved for images in flight (bodies, decoded pixels, answers being sent)",
    multiprocess_mode="livesum",
)
BATCH_SIZE = Histogram(
    "cyclegan_batch_size",
    "Images per forward pass",
    ["direction", "backend"],
    buckets=BATCH_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "cyclegan_queue_wait_seconds",
    "Time an image waits in the generator's queue before its forward pass starts",
    ["direction"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_TIME = Histogram(
    "cyclegan_inference_duration_seconds",
    "Time of one forward pass (a whole batch)",
    ["direction", "backend"],
    buckets=LATENCY_BUCKETS,
)

# Filled by the front once it knows what the generator serves; until then every direction
# is "unknown", so a scanner cannot add label values.
KNOWN_DIRECTIONS: set[str] = set()

# The routes of the front; any other path is labelled "unknown".
ROUTES = {
    "/", "/docs", "/docs.json", "/schema.json", "/directions", "/translate", "/metrics",
    "/livez", "/readyz", "/healthz",
}  # fmt: skip
PREFIX_ROUTES = {
    "/translate/": "/translate/{direction}",
    "/static/": "/static/{file}",
    "/static_content/": "/static_content/{file}",
}


def direction_label(direction: str | None) -> str:
    return direction if direction in KNOWN_DIRECTIONS else "unknown"


def endpoint_label(path: str) -> str:
    """The route template a path belongs to, or "unknown": a bounded set of values."""
    if path in ROUTES:
        return path
    for prefix, template in PREFIX_ROUTES.items():
        if path.startswith(prefix):
            return template
    return "unknown"


class RouteLabelledTrafficMetrics(instruments.RunnerTrafficMetricsMiddleware):
    """BentoML's request metrics (bentoml_*_request_total, ...), labelled by route.

    BentoML labels them with the raw path, so every junk path would add series. This runs
    BentoML's own middleware on a copy of the scope whose path is the route template, and
    gives the app below the real path back.
    """

    REAL_PATH = "cyclegan.real_path"

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        super().__init__(self._with_real_path(app), **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "path": endpoint_label(scope["path"]), self.REAL_PATH: scope["path"]}
        await super().__call__(scope, receive, send)

    @classmethod
    def _with_real_path(cls, app: ASGIApp) -> ASGIApp:
        async def restore(scope: Scope, receive: Receive, send: Send) -> None:
            if cls.REAL_PATH in scope:
                scope = {**scope, "path": scope[cls.REAL_PATH]}
            await app(scope, receive, send)

        return restore


def label_bentoml_metrics_by_route() -> None:
    """Make BentoML build its request-metrics middleware from `RouteLabelledTrafficMetrics`.

    BentoML 1.4 imports the class from this module each time it builds a service's app
    (_bentoml_impl/server/app.py, ServiceAppFactory.middlewares), so replacing the module
    attribute before the app is built is enough.
    """
    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledTrafficMetrics  # type: ignore[misc]
