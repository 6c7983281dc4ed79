"""loadtest/probe.py against real processes and servers: a process tree with a generator-named
worker, a Prometheus endpoint of prometheus_client's, and a small local HTTP server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from loadtest.probe import (
    GENERATOR,
    NO_ANSWER,
    TIMEOUT,
    closed_loop,
    generator_workers,
    metric,
    open_loop,
    parse_metrics,
    processes,
    scrape,
    total,
    tree_rss,
)
from loadtest.server import free_port

MIB = 1024 * 1024

# The parent starts a worker whose command line names the generator (from the environment, so
# the parent's own command line does not) and that holds 64 MiB.
WORKER = "import time; block = b'x' * (64 << 20); print('ready', flush=True); time.sleep(120)"
PARENT = (
    "import os, subprocess, sys; "
    f"subprocess.run([sys.executable, '-c', {WORKER!r}, os.environ['WORKER_NAME']])"
)


@pytest.fixture
def process_tree() -> Iterator[subprocess.Popen[str]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], env={**os.environ, "WORKER_NAME": GENERATOR},
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        yield parent
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may have gone already
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_the_tree_its_memory_and_the_generator_worker(
    process_tree: subprocess.Popen[str],
) -> None:
    tree = processes(process_tree.pid)
    assert tree[0].pid == process_tree.pid and len(tree) == 2
    (worker,) = generator_workers(process_tree.pid)
    assert worker.pid == tree[1].pid
    own = psutil.Process(process_tree.pid).memory_info().rss
    assert tree_rss(process_tree.pid) - own >= 64 * MIB  # the worker's memory is counted
    worker.kill()
    worker.wait(10)
    assert generator_workers(process_tree.pid) == []


def exposition_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = Counter("requests_total", "help", ["direction", "outcome"], registry=registry)
    requests.labels("horse2zebra", "ok").inc(3)
    requests.labels("horse2zebra", "overloaded").inc(2)
    requests.labels("zebra2horse", "ok").inc(5)
    Gauge("in_flight_requests", "help", registry=registry).set(7)
    batches = Histogram("batch_size", "help", ["direction"], buckets=(1, 4), registry=registry)
    for size in (1, 1, 3, 8):
        batches.labels("horse2zebra").observe(size)
    odd = Counter("odd_total", "help", ["path"], registry=registry)
    odd.labels('a "quoted" \\ value,\nwith} braces').inc()
    return registry


def test_metrics_from_a_prometheus_client_endpoint() -> None:
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=exposition_registry())
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        samples = scrape(url)
        assert total(samples, "requests_total") == 10
        assert total(samples, "requests_total", direction="horse2zebra") == 5
        assert total(samples, "requests_total", direction="horse2zebra", outcome="ok") == 3
        assert metric(url, "requests_total", outcome="ok") == 8
        assert metric(url, "in_flight_requests") == 7
        assert total(samples, "batch_size_count", direction="horse2zebra") == 4
        assert total(samples, "batch_size_sum") == 13
        assert total(samples, "batch_size_bucket", le="1.0") == 2
        assert total(samples, "batch_size_bucket", le="4.0") == 3
        assert total(samples, "batch_size_bucket", le="+Inf") == 4
        assert total(samples, "odd_total", path='a "quoted" \\ value,\nwith} braces') == 1
        assert total(samples, "requests_total", direction="nowhere") == 0
        assert total(samples, "absent") == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_metrics_text_with_timestamps_and_special_values() -> None:
    text = '# HELP x help\n# TYPE x gauge\nx 1.5 1700000000000\ny{a="b"} NaN\nz +Inf\n\n'
    samples = parse_metrics(text)
    assert [(s.name, dict(s.labels)) for s in samples] == [("x", {}), ("y", {"a": "b"}), ("z", {})]
    assert samples[0].value == 1.5 and samples[1].value != samples[1].value
    assert samples[2].value == float("inf")


# A small HTTP server: answers after `?sleep=` seconds; /busy answers 429 after 10 requests.


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service
    server: LocalServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        address = urlsplit(self.path)
        with self.server.lock:
            self.server.seen.append((address.path, len(body), self.headers["content-type"]))
            count = len(self.server.seen)
        time.sleep(float(parse_qs(address.query).get("sleep", ["0"])[0]))
        busy = address.path == "/busy" and count > 10
        self.send_response(429 if busy else 200)
        if busy:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass  # not a line per request


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int, str]] = []  # (path, body bytes, content type)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (a timeout test) breaks the pipe: expected


@pytest.fixture
def local() -> Iterator[LocalServer]:
    server = LocalServer()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


BODY = b"\x89PNG" + bytes(1000)


def test_closed_loop_posts_back_to_back_round_robin(local: LocalServer) -> None:
    urls = [f"{local.url}/a?sleep=0.1", f"{local.url}/b?sleep=0.1"]
    run = closed_loop(urls, BODY, 2, 1.0, headers={"content-type": "image/png"})
    assert not run.stopped and run.seconds >= 1.0
    assert {a.status_code for a in run.answers} == {200}
    assert all(a.seconds >= 0.1 for a in run.answers)
    # each client waits for its answer before posting again: at most one in flight each
    assert 4 <= len(run.answers) <= 2 * (1.0 / 0.1 + 1)
    assert len(local.seen) == len(run.answers)
    assert {path for path, _, _ in local.seen} == {"/a", "/b"}  # client i posts to urls[i]
    assert set(local.seen) <= {("/a", len(BODY), "image/png"), ("/b", len(BODY), "image/png")}


def test_closed_loop_stops_every_client_when_told(local: LocalServer) -> None:
    run = closed_loop(
        f"{local.url}/busy", BODY, 3, 60, until=lambda answer: answer.status_code == 429
    )
    assert run.stopped and run.seconds < 30
    refused = [a for a in run.answers if a.status_code == 429]
    assert refused and all(a.headers["retry-after"] == "1" for a in refused)
    assert len(run.answers) <= 10 + 3  # once told, each client finishes its one request at most


def test_hangs_and_refusals_are_statuses(local: LocalServer) -> None:
    hung = closed_loop(f"{local.url}/a?sleep=2", BODY, 1, 0.5, timeout=0.2)
    assert hung.answers and {a.status_code for a in hung.answers} == {TIMEOUT}
    refused = closed_loop(f"http://127.0.0.1:{free_port()}/a", BODY, 1, 0.2)
    assert refused.answers and {a.status_code for a in refused.answers} == {NO_ANSWER}


def test_open_loop_latency_counts_the_wait_for_a_client_thread(local: LocalServer) -> None:
    """20 requests due over 1 s, 2 client threads, 0.2 s per answer: the threads manage 10 a
    second, so request k starts late by up to about 0.9 s, and its latency must say so
    (timed from the send alone, every latency would be about 0.2 s)."""
    answers = open_loop(f"{local.url}/a?sleep=0.2", BODY, 20, 1.0, threads=2)
    assert len(answers) == 20  # one per 1/20 s of the second, however late
    assert {a.status_code for a in answers} == {200}
    assert min(a.seconds for a in answers) >= 0.2
    assert answers[-1].seconds >= 0.8  # the last ones waited ~0.9 s for a thread
    assert answers[-1].seconds > answers[0].seconds + 0.5  # the wait grows along the schedule
