"""The service's Prometheus metrics (besides BentoML's own), in base units.

Created with prometheus_client directly; BentoML runs its workers with
PROMETHEUS_MULTIPROC_DIR set and serves every process's values at /metrics, so gauges name
their multiprocess mode.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

REQUESTS = Counter(
    "cyclegan_requests_total",
    "Translation requests by direction and outcome "
    "(ok, client_error, too_large, overloaded, error)",
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
    "Translation requests being handled now",
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
    "Time from handing an image to the batcher to the start of its forward pass",
    ["direction"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_TIME = Histogram(
    "cyclegan_inference_duration_seconds",
    "Time of one forward pass (a whole batch)",
    ["direction", "backend"],
    buckets=LATENCY_BUCKETS,
)
