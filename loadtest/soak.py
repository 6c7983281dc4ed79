"""`make soak`: the service under saturation and faults, on loopback, bounded in time.

Starts the service (the shipped model, default settings) on a free loopback port and runs:
1. capacity: 16 clients back to back for `--capacity-s`; C = answered images per second;
2. saturation: requests arrive at 4 x C per second (open loop) for `--saturation-s`:
   which answers, memory of the server's processes against the warmed-up level, and how
   soon a lone request is answered normally after the load stops;
3. a killed generator: 8 clients back to back; the generator worker gets SIGKILL after 10 s:
   which answers, how long until the first 200 after the kill, what /readyz said;
4. slow readers: 100 connections ask for large answers and never read them while 8 clients
   run: their answers, and whether the slow readers held in-flight slots.
The figures go to the console and, with --out, to their own section of BENCHMARKS.md (the
other sections are left as they are). Linux only: memory and the worker come from /proc.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import io
import logging
import os
import platform
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from PIL import Image

from cyclegan.benchmarks_file import write_section
from loadtest.server import ROOT, Server, start_server, stop_server, wait_until

log = logging.getLogger("loadtest.soak")
HEADING = "## Soak: saturation, a killed generator, slow readers"
JPEG = {"content-type": "image/jpeg"}


@dataclass
class Tally:
    """Answers by status, and the latency of the 200s."""

    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    ok_latencies: list[float] = field(default_factory=list)
    longest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        with self.lock:
            self.codes[status] += 1
            self.longest = max(self.longest, seconds)
            if status == 200:
                self.ok_latencies.append(seconds)

    def codes_text(self) -> str:
        names = {-1: "timeout", -2: "connection error"}
        return ", ".join(f"{names.get(c, c)}: {n}" for c, n in sorted(self.codes.items()))

    def percentile(self, q: float) -> float:
        values = sorted(self.ok_latencies)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def post(client: httpx.Client, url: str, data: bytes, tally: Tally) -> int:
    started = time.monotonic()
    try:
        status = client.post(f"{url}/translate/horse2zebra", content=data, headers=JPEG).status_code
    except httpx.TimeoutException:
        status = -1
    except httpx.HTTPError:
        status = -2
    tally.add(status, time.monotonic() - started)
    return status


def closed_loop(url: str, data: bytes, clients: int, seconds: float, tally: Tally) -> None:
    deadline = time.monotonic() + seconds

    def client(_: int) -> None:
        with httpx.Client(timeout=90) as session:
            while time.monotonic() < deadline:
                post(session, url, data, tally)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))


def open_loop(url: str, data: bytes, rate: float, seconds: float, tally: Tally) -> None:
    """Requests start at `rate` per second whatever the answers do (up to 512 at once)."""
    local = threading.local()

    def one() -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=90)
        post(local.client, url, data, tally)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(512) as pool:
        sent = 0
        while (now := time.monotonic() - started) < seconds:
            while sent < now * rate:
                pool.submit(one)
                sent += 1
            time.sleep(0.005)


def tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children[parent].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss(pid: int) -> int:
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def generator_pids(pid: int) -> list[int]:
    found = []
    for member in tree(pid):
        try:
            if b"cyclegan-generator" in Path(f"/proc/{member}/cmdline").read_bytes():
                found.append(member)
        except OSError:
            pass
    return found


def capacity_and_saturation(server: Server, data: bytes, args: argparse.Namespace) -> list[str]:
    pid = server.process.pid
    closed_loop(server.url, data, 8, 20, Tally())  # warm-up
    measured = Tally()
    closed_loop(server.url, data, 16, args.capacity_s, measured)
    capacity = measured.codes[200] / args.capacity_s
    lone = sorted(lone_request(server.url, data) for _ in range(5))[2]
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
    saturated = Tally()
    open_loop(server.url, data, 4 * capacity, args.saturation_s, saturated)
    done.set()
    sampler.join()
    stopped = time.monotonic()
    while True:  # the first normal answer after the load
        try:
            answered = httpx.post(
                f"{server.url}/translate/horse2zebra", content=data, headers=JPEG, timeout=30
            ).status_code
        except httpx.HTTPError:
            answered = 0
        if answered == 200 or time.monotonic() - stopped > 60:
            break
    recovery = time.monotonic() - stopped
    lone_after = sorted(lone_request(server.url, data) for _ in range(5))[2]
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
    httpx.post(f"{url}/translate/horse2zebra", content=data, headers=JPEG, timeout=60)
    return time.monotonic() - started


def killed_generator(server: Server, data: bytes) -> list[str]:
    tally = Tally()
    first_ok_after_kill: list[float] = []
    killed_at: list[float] = []
    reasons: collections.Counter[str] = collections.Counter()
    done = threading.Event()

    def kill() -> None:
        time.sleep(10)
        pids = generator_pids(server.process.pid)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed_at.append(time.monotonic())
        log.info("killed generator worker(s) %s", pids)

    def watch() -> None:
        while not done.is_set():
            try:
                probe = httpx.get(f"{server.url}/readyz", timeout=10)
                if probe.status_code != 200:
                    reasons[probe.json().get("error", "?")] += 1
                elif killed_at and not first_ok_after_kill:
                    answer = httpx.post(
                        f"{server.url}/translate/horse2zebra",
                        content=data,
                        headers=JPEG,
                        timeout=60,
                    )
                    if answer.status_code == 200:
                        first_ok_after_kill.append(time.monotonic() - killed_at[0])
            except httpx.HTTPError as error:
                reasons[f"no answer ({type(error).__name__})"] += 1
            time.sleep(0.25)

    threads = [threading.Thread(target=kill), threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    closed_loop(server.url, data, 8, 40, tally)
    threads[0].join()
    wait_until(server, "/readyz", 200, timeout=180)
    done.set()
    threads[1].join()
    recovered = f"{first_ok_after_kill[0]:.1f} s" if first_ok_after_kill else "not within the run"
    said = "; ".join(f"{reason!r} x{n}" for reason, n in reasons.most_common(3)) or "nothing"
    return [
        "Generator killed: 8 clients back to back for 40 s; SIGKILL to the generator worker at "
        "10 s (BentoML starts a new one).",
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
    host, port = server.url.removeprefix("http://").split(":")
    readers = []
    request = large_answer_request()
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(request)
        readers.append(sock)
    tally = Tally()
    peaks = {"cyclegan_in_flight_requests": 0.0, "cyclegan_image_memory_bytes": 0.0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for name in peaks:
                peaks[name] = max(peaks[name], metric(server.url, name))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        closed_loop(server.url, data, 8, 30, tally)
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


def metric(url: str, name: str) -> float:
    """One unlabelled metric's value from /metrics (0 when absent or unreachable)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


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
