"""The service's Prometheus metrics, in base units, with bounded labels.

Created with prometheus_client directly; BentoML runs its workers with
PROMETHEUS_MULTIPROC_DIR set, and serving/metrics_server.py serves every process's values on
the metrics port, so gauges name their multiprocess mode. Label values never come straight
from a request: directions are known names or "unknown", so junk paths add no series.
BentoML's own metrics are off.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

PHASE_SECONDS = Histogram(
    "cyclegan_phase_seconds",
    "Time of one translation request by phase (read, decode, queue, hop, infer, encode, total): "
    "the request's Server-Timing header",
    ["phase"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)

# Filled by the front once it knows what the generator serves; until then every direction
# is "unknown", so a scanner cannot add label values.
KNOWN_DIRECTIONS: set[str] = set()


def direction_label(direction: str | None) -> str:
    return direction if direction in KNOWN_DIRECTIONS else "unknown"
