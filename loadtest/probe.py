"""The service seen from outside, for the benchmarks, the soak and the tests: its process tree
(memory, the generator worker), its Prometheus metrics, its answers under load, and raw
connections (slow readers, stalled uploads).

Load comes in two kinds. A closed loop keeps `clients` requests in flight, each client posting
again as soon as it is answered; an open loop starts requests on a schedule, whatever the
answers do. Each answer's latency runs from its send time, and in the open loop from the time
its schedule set, so a request that waited for a free client thread counts that wait too.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
import psutil

GENERATOR = "cyclegan-generator"  # BentoML names the service on its worker's command line
JPEG = {"content-type": "image/jpeg"}
TIMEOUT = -1  # the status of a request that got no answer in time (a hang)
NO_ANSWER = -2  # the status of a request that got no answer at all (refused, reset)


# The process tree --------------------------------------------------------------------------


def processes(pid: int) -> list[psutil.Process]:
    """Process `pid` and all its descendants (the server and its workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_rss(pid: int) -> int:
    """Resident memory of process `pid` and all its descendants, in bytes."""
    total = 0
    for process in processes(pid):
        with contextlib.suppress(psutil.Error):  # a worker that just exited
            total += process.memory_info().rss
    return total


def is_generator(process: psutil.Process) -> bool:
    """Whether `process` is a generator worker (psutil.Error when it is gone)."""
    return GENERATOR in " ".join(process.cmdline())


def generator_workers(pid: int) -> list[psutil.Process]:
    """The generator service's worker processes among `pid`'s descendants."""
    found = []
    for process in processes(pid):
        with contextlib.suppress(psutil.Error):
            if is_generator(process):
                found.append(process)
    return found


def model_processes(pid: int) -> list[psutil.Process]:
    """The processes that run the model: the generator's workers, or, with the generator in
    the front's process (CYCLEGAN_GENERATOR=in-process), the server's workers."""
    return generator_workers(pid) or processes(pid)[1:]


# Metrics -----------------------------------------------------------------------------------

# `name{label="value",...} value [timestamp]`; label values escape \\, \" and \n.
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
ESCAPED = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition (comments and blank lines skipped)."""
    samples = []
    for line in text.splitlines():
        if line.startswith("#") or not (match := SAMPLE.match(line.strip())):
            continue
        labels = {
            key: re.sub(r"\\(.)", lambda m: ESCAPED.get(m[1], m[0]), value)
            for key, value in LABEL.findall(match[2] or "")
        }
        samples.append(Sample(match[1], labels, float(match[3])))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def scrape(metrics_url: str, timeout: float = 30) -> list[Sample]:
    """Every sample the service's metrics endpoint shows now."""
    response = httpx.get(metrics_url, timeout=timeout)
    response.raise_for_status()
    return parse_metrics(response.text)


def metric(metrics_url: str, name: str, **labels: str) -> float:
    """One scrape's sum of `name`'s samples whose labels include `labels` (0 when absent)."""
    return total(scrape(metrics_url), name, **labels)


# Load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status_code: int  # the HTTP status, or TIMEOUT, or NO_ANSWER
    seconds: float  # from the send (its scheduled time, in the open loop) to the whole answer
    headers: httpx.Headers = field(default_factory=httpx.Headers)


@dataclass(frozen=True)
class Run:
    answers: list[Answer]
    seconds: float  # from the first send to the last answer
    stopped: bool  # `until` held for an answer before the time was up


def post(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str],
    sent: float | None = None,
) -> Answer:  # fmt: skip
    """POST `body` to `url` once; the latency counts from `sent` (a time.perf_counter() value)
    where given, else from now."""
    began = time.perf_counter() if sent is None else sent
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return Answer(TIMEOUT, time.perf_counter() - began)
    except httpx.HTTPError:
        return Answer(NO_ANSWER, time.perf_counter() - began)
    return Answer(response.status_code, time.perf_counter() - began, response.headers)


def closed_loop(
    url: str | list[str], body: bytes, clients: int, seconds: float, *,
    headers: Mapping[str, str] = JPEG, until: Callable[[Answer], bool] | None = None,
    timeout: float = 90,
) -> Run:  # fmt: skip
    """`clients` threads post `body` back to back for `seconds`, or until `until(answer)` holds
    for an answer; with a list of addresses, client i posts to the i-th (round robin)."""
    urls = [url] if isinstance(url, str) else url
    deadline = time.perf_counter() + seconds
    stop = threading.Event()

    def client(target: str) -> list[Answer]:
        answers = []
        with httpx.Client(timeout=timeout) as session:
            while not stop.is_set() and time.perf_counter() < deadline:
                answer = post(session, target, body, headers)
                answers.append(answer)
                if until is not None and until(answer):
                    stop.set()
        return answers

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        batches = list(pool.map(client, [urls[i % len(urls)] for i in range(clients)]))
    answers = [answer for batch in batches for answer in batch]
    return Run(answers, time.perf_counter() - began, stop.is_set())


def open_loop(
    url: str, body: bytes, rate: float, seconds: float, *,
    headers: Mapping[str, str] = JPEG, threads: int = 512, timeout: float = 90,
) -> list[Answer]:  # fmt: skip
    """Requests start at `rate` per second for `seconds`, whatever the answers do, from up to
    `threads` client threads. Request k is due at k / rate, and its latency counts from then:
    when every thread is busy it waits for one, and that wait is part of its latency. Every
    request due is sent, however late, so a client that falls behind drops none."""
    local = threading.local()
    sessions: list[httpx.Client] = []

    def one(due: float) -> Answer:
        if not hasattr(local, "session"):
            local.session = httpx.Client(timeout=timeout)
            sessions.append(local.session)
        return post(local.session, url, body, headers, sent=due)

    began = time.perf_counter()
    futures = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for k in range(math.ceil(rate * seconds)):
            due = began + k / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            futures.append(pool.submit(one, due))
    for session in sessions:
        session.close()
    return [future.result() for future in futures]


def open_connection(url: str, request: bytes, receive_buffer: int | None = None) -> socket.socket:
    """A raw connection to the server at `url` (http://host:port) that has sent `request`
    (headers, maybe part of a body); a small `receive_buffer` makes it a slow reader, since the
    kernel then holds little of the answer."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock
