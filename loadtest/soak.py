"""`make soak`: the service under saturation and faults, on loopback, bounded in time.

Starts the service (the shipped model, default settings) on a free loopback port and runs:
1. capacity: 16 clients back to back for `--capacity-s`; C = answered images per second;
2. saturation: requests arrive at 4 x C per second (open loop) for `--saturation-s`:
   which answers, their latency (from each request's scheduled start, so a request that
   waited for a free client thread counts that wait), memory of the server's processes
   against the warmed-up level, and how soon a lone request is answered normally after the
   load stops;
3. a killed generator: 8 clients back to back; the process that runs the model (the generator
   worker, or the front's where the generator runs in it) gets SIGKILL after 10 s:
   which answers, how long until the first 200 after the kill, what /readyz said;
4. slow readers: 100 connections ask for large answers and never read them while 8 clients
   run: their answers, and whether the slow readers held in-flight slots.
The figures go to the console and, with --out, to their own section of BENCHMARKS.md (the
other sections are left as they are). Memory, the worker and the metrics come from
loadtest/probe.py.
"""

from __future__ import annotations

import argparse
import collections
import io
import logging
import os
import platform
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from PIL import Image

from cyclegan.benchmarks_file import write_section
from loadtest.probe import (
    JPEG,
    NO_ANSWER,
    TIMEOUT,
    Answer,
    closed_loop,
    model_processes,
    open_connection,
    open_loop,
    scrape,
    total,
    tree_rss,
)
from loadtest.server import ROOT, Server, start_server, stop_server, wait_until

log = logging.getLogger("loadtest.soak")
HEADING = "## Soak: saturation, a killed generator, slow readers"


@dataclass(frozen=True)
class Tally:
    """Answers by status, and the latency of the 200s."""

    codes: collections.Counter[int]
    ok_latencies: list[float]
    longest: float

    @classmethod
    def of(cls, answers: Iterable[Answer]) -> Tally:
        answers = list(answers)
        return cls(
            collections.Counter(a.status_code for a in answers),
            sorted(a.seconds for a in answers if a.status_code == 200),
            max((a.seconds for a in answers), default=0.0),
        )

    def codes_text(self) -> str:
        names = {TIMEOUT: "timeout", NO_ANSWER: "connection error"}
        return ", ".join(f"{names.get(c, c)}: {n}" for c, n in sorted(self.codes.items()))

    def percentile(self, q: float) -> float:
        values = self.ok_latencies
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def translate_url(server: Server) -> str:
    return f"{server.url}/translate/horse2zebra"


def capacity_and_saturation(server: Server, data: bytes, args: argparse.Namespace) -> list[str]:
    pid, url = server.process.pid, translate_url(server)
    closed_loop(url, data, 8, 20)  # warm-up
    measured = Tally.of(closed_loop(url, data, 16, args.capacity_s).answers)
    capacity = measured.codes[200] / args.capacity_s
    lone = sorted(lone_request(url, data) for _ in range(5))[2]
    warmed = tree_rss(pid)
    peak, samples = warmed, []
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            rss = tree_rss(pid)
            peak = max(peak, rss)
            samples.append(rss)
            time.sleep(1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    saturated = Tally.of(open_loop(url, data, 4 * capacity, args.saturation_s))
    done.set()
    sampler.join()
    stopped = time.monotonic()
    while True:  # the first normal answer after the load
        try:
            answered = httpx.post(url, content=data, headers=JPEG, timeout=30).status_code
        except httpx.HTTPError:
            answered = 0
        if answered == 200 or time.monotonic() - stopped > 60:
            break
    recovery = time.monotonic() - stopped
    lone_after = sorted(lone_request(url, data) for _ in range(5))[2]
    end = tree_rss(pid)
    served = saturated.codes[200] / args.saturation_s
    mib = 1024 * 1024
    return [
        f"Capacity (16 clients back to back, {args.capacity_s} s): **{capacity:.2f} images/s**; "
        f"a lone request before the load: {lone * 1000:.0f} ms (median of 5).",
        "",
        f"Saturation: {4 * capacity:.1f} requests/s offered (4 x capacity, open loop) for "
        f"{args.saturation_s} s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers | {saturated.codes_text()} |",
        f"| served | {served:.2f} images/s |",
        f"| 200 latency p50 / p95 / longest answer | {saturated.percentile(0.5) * 1000:.0f} ms / "
        f"{saturated.percentile(0.95) * 1000:.0f} ms / {saturated.longest:.1f} s |",
        f"| RSS of the server's processes: warmed up / peak / after | {warmed / mib:.0f} / "
        f"{peak / mib:.0f} / {end / mib:.0f} MiB (peak {100 * (peak - warmed) / warmed:+.1f}%) |",
        f"| first 200 after the load stopped | {recovery:.2f} s |",
        f"| a lone request after the load | {lone_after * 1000:.0f} ms (median of 5) |",
    ]


def lone_request(url: str, data: bytes) -> float:
    started = time.monotonic()
    httpx.post(url, content=data, headers=JPEG, timeout=60)
    return time.monotonic() - started


def killed_generator(server: Server, data: bytes) -> list[str]:
    first_ok_after_kill: list[float] = []
    killed_at: list[float] = []
    reasons: collections.Counter[str] = collections.Counter()
    done = threading.Event()

    def kill() -> None:
        time.sleep(10)
        workers = model_processes(server.process.pid)
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
        killed_at.append(time.monotonic())
        log.info("killed the process(es) running the model: %s", [w.pid for w in workers])

    def watch() -> None:
        while not done.is_set():
            try:
                probe = httpx.get(f"{server.url}/readyz", timeout=10)
                if probe.status_code != 200:
                    reasons[probe.json().get("error", "?")] += 1
                elif killed_at and not first_ok_after_kill:
                    answer = httpx.post(
                        translate_url(server), content=data, headers=JPEG, timeout=60
                    )
                    if answer.status_code == 200:
                        first_ok_after_kill.append(time.monotonic() - killed_at[0])
            except httpx.HTTPError as error:
                reasons[f"no answer ({type(error).__name__})"] += 1
            time.sleep(0.25)

    threads = [threading.Thread(target=kill), threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    tally = Tally.of(closed_loop(translate_url(server), data, 8, 40).answers)
    threads[0].join()
    wait_until(server, "/readyz", 200, timeout=180)
    done.set()
    threads[1].join()
    recovered = f"{first_ok_after_kill[0]:.1f} s" if first_ok_after_kill else "not within the run"
    said = "; ".join(f"{reason!r} x{n}" for reason, n in reasons.most_common(3)) or "nothing"
    return [
        "Generator killed: 8 clients back to back for 40 s; SIGKILL at 10 s to the process "
        "that runs the model: the generator worker, or with the generator in the front's "
        "process (the default) the front's worker; BentoML starts a new one.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers | {tally.codes_text()} |",
        f"| longest answer | {tally.longest:.1f} s |",
        f"| first 200 after the kill | {recovered} |",
        f"| /readyz meanwhile | {said} |",
    ]


def large_answer_request() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3999), (120, 140, 90)).save(buffer, format="JPEG", quality=90)
    image = buffer.getvalue()
    return (
        b"POST /translate/horse2zebra?format=png HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: image/jpeg\r\nContent-Length: " + str(len(image)).encode() + b"\r\n\r\n"
    ) + image


def slow_readers(server: Server, data: bytes, count: int = 100) -> list[str]:
    request = large_answer_request()
    readers = [open_connection(server.url, request, receive_buffer=4096) for _ in range(count)]
    peaks = {"cyclegan_in_flight_requests": 0.0, "cyclegan_image_memory_bytes": 0.0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                samples = scrape(server.metrics_url, timeout=10)
            except httpx.HTTPError:
                samples = []  # no scrape this time (the server is busy): the peaks stay
            for name in peaks:
                peaks[name] = max(peaks[name], total(samples, name))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        tally = Tally.of(closed_loop(translate_url(server), data, 8, 30).answers)
    finally:
        done.set()
        watcher.join()
        answered: collections.Counter[str] = collections.Counter()
        for sock in readers:  # what each slow reader was sent (the start of it is buffered)
            sock.settimeout(1)
            try:
                head = sock.recv(12, socket.MSG_PEEK)
            except OSError:
                head = b""
            answered[head[9:12].decode() if head.startswith(b"HTTP/1.1 ") else "nothing"] += 1
            sock.close()
    return [
        f"Slow readers: {count} connections ask for a 4000 x 3999 PNG answer and never read it, "
        "while 8 clients post back to back for 30 s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| what the slow readers were sent | "
        f"{', '.join(f'{k}: {n}' for k, n in sorted(answered.items()))} |",
        f"| the 8 clients' answers | {tally.codes_text()} |",
        f"| their 200 latency p50 / p95 | {tally.percentile(0.5) * 1000:.0f} ms / "
        f"{tally.percentile(0.95) * 1000:.0f} ms |",
        f"| peak requests in flight / image memory reserved | "
        f"{peaks['cyclegan_in_flight_requests']:.0f} / "
        f"{peaks['cyclegan_image_memory_bytes'] / 2**20:.0f} MiB |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "horse.jpg")
    parser.add_argument("--capacity-s", type=int, default=30)
    parser.add_argument("--saturation-s", type=int, default=120)
    parser.add_argument("--out", type=Path, help="write the figures into this BENCHMARKS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    with Image.open(args.image) as image:
        buffer = io.BytesIO()
        image.convert("RGB").resize((256, 256)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(args.models, Path(workdir), {})
        try:
            wait_until(server, "/readyz", 200, timeout=300)
            lines = capacity_and_saturation(server, data, args)
            log.info("\n%s", "\n".join(lines))
            lines += ["", *killed_generator(server, data)]
            log.info("\n%s", "\n".join(lines[-8:]))
            lines += ["", *slow_readers(server, data)]
            log.info("\n%s", "\n".join(lines[-6:]))
        finally:
            stop_server(server)
    header = [
        f"Written by `make soak` (`python -m loadtest.soak`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {time.monotonic() - began:.0f} s, on "
        f"loopback against `python -m serving` (the shipped model, default settings); "
        f"{platform.machine()}, {os.cpu_count()} cores.",
        "",
    ]
    if args.out:
        write_section(args.out, HEADING, [HEADING, "", *header, *lines])
        log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
