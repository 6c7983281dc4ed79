"""`python -m loadtest.benchmark`: the service over HTTP, against the raw runtime's figures.

Starts the service on loopback (twice: batching on and off) on `--models` and measures, as a
client only:
2. service overhead: HTTP throughput at saturation / the raw runtime's images/s at the same
   batch size, read from `--runtime-figures` (written by `python -m compile benchmark
   --figures`, just before, in the same `make bench`); requests then ask for the figures'
   resolution (`?resolution=`), so both ran the same shapes;
3. batching: throughput and p50/p95 latency at 1, 4, 16 clients, batching on and off;
4. latency for a person: p50/p95 of one request on an idle server.
Writes those sections of BENCHMARKS.md (other sections stay as they are). `--quick` runs every
section on tiny sizes (the test suite does, so this code cannot rot).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import io
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from loadtest.server import ROOT, start_server, stop_server, wait_until

log = logging.getLogger("loadtest.benchmark")
OVERHEAD = "## 2. Service overhead"
BATCHING = "## 3. Batching"
PERSON = "## 4. Latency for a person"
OVERHEAD_TARGET = 0.85


@dataclass(frozen=True)
class Plan:
    size: int  # side of the posted JPEG (the service works at the model's resolution)
    max_batch: int  # CYCLEGAN_MAX_BATCH_SIZE with batching on
    seconds: float  # per measurement
    clients: tuple[int, ...]
    person_requests: int


FULL = Plan(256, 16, 8.0, (1, 4, 16), 30)
QUICK = Plan(64, 2, 1.0, (1, 4), 5)


@dataclass
class Load:
    images_per_second: float
    latencies: list[float]  # seconds, answered requests only
    mean_batch: float
    failed: int


def jpeg(size: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def load(url: str, body: bytes, clients: int, seconds: float) -> tuple[float, list[float], int]:
    """(images/s, latencies in s, errors) with `clients` threads posting back to back."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    def client() -> None:
        nonlocal errors
        with httpx.Client(timeout=120) as http:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                response = http.post(url, content=body, headers={"content-type": "image/jpeg"})
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return len(latencies) / (time.perf_counter() - start), latencies, errors


def batch_stats(url: str, direction: str) -> tuple[float, float]:
    """(sum, count) of the service's batch-size histogram for `direction`."""
    text = httpx.get(f"{url}/metrics").text

    def total(suffix: str) -> float:
        pattern = rf'^cyclegan_batch_size_{suffix}\{{[^}}]*direction="{direction}"[^}}]*\}} (\S+)'
        return sum(float(v) for v in re.findall(pattern, text, re.M))

    return total("sum"), total("count")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def pick_direction(directions: dict[str, Any], figures: dict[str, Any] | None) -> str:
    """The runtime figures' model's first direction, else the first direction served."""
    names = sorted(directions)
    if figures is not None:
        names = [n for n in names if directions[n]["model"] == figures["model"]] or names
    return names[0]


def measure(
    models: Path, plan: Plan, figures: dict[str, Any] | None, workdir: Path
) -> tuple[str, dict[str, Any], dict[str, dict[int, Load]], list[float]]:
    """(direction, its /directions entry, loads by batching mode and clients, person latencies)."""
    body = jpeg(plan.size, 1)
    loads: dict[str, dict[int, Load]] = {}
    person: list[float] = []
    direction, described = "", {}
    for mode, batch_size in (("on", plan.max_batch), ("off", 1)):
        server = start_server(
            models, workdir / f"batching-{mode}",
            {"CYCLEGAN_BACKEND": "onnxruntime", "CYCLEGAN_MAX_BATCH_SIZE": str(batch_size),
             # a latency goal every batch can meet: saturation is measured, not load shedding
             # (the request timeout must exceed it: the service checks the two together)
             "CYCLEGAN_MAX_CONCURRENCY": "256", "CYCLEGAN_MAX_LATENCY_MS": "60000",
             "CYCLEGAN_REQUEST_TIMEOUT_S": "120"},
        )  # fmt: skip
        try:
            wait_until(server, "/readyz", 200)
            directions = httpx.get(f"{server.url}/directions").json()["directions"]
            direction = pick_direction(directions, figures)
            described = directions[direction]
            url = f"{server.url}/translate/{direction}"
            if figures is not None:
                url += f"?resolution={figures['size']}"
            load(url, body, 2, min(2.0, plan.seconds))  # warm-up
            if mode == "on":
                with httpx.Client(timeout=60) as http:
                    for _ in range(plan.person_requests):
                        began = time.perf_counter()
                        http.post(
                            url, content=body, headers={"content-type": "image/jpeg"}
                        ).raise_for_status()
                        person.append(time.perf_counter() - began)
            loads[mode] = {}
            for clients in plan.clients:
                before = batch_stats(server.url, direction)
                rate, latencies, errors = load(url, body, clients, plan.seconds)
                after = batch_stats(server.url, direction)
                passes = after[1] - before[1]
                mean_batch = (after[0] - before[0]) / passes if passes else float("nan")
                loads[mode][clients] = Load(rate, latencies, mean_batch, errors)
                log.info(
                    "batching %s, %d clients: %.2f img/s, mean batch %.2f, %d errors",
                    mode, clients, rate, mean_batch, errors,
                )  # fmt: skip
        finally:
            stop_server(server)
    return direction, described, loads, person


def overhead_lines(
    described: dict[str, Any], busiest: Load, figures: dict[str, Any] | None
) -> list[str]:
    """Service throughput at saturation against the raw runtime at the nearest batch size."""
    runtime = f"{described['backend']} {described['device']} {described['precision']}"
    model = f"{described['model']} {described['version']}"
    if figures is None:
        return ["No runtime figures were given (`--runtime-figures`): no ratio.", ""]
    raw = {int(b): v for b, v in figures["images_per_second"].get(runtime, {}).items()}
    problems = []
    if f"{figures['model']} {figures['version']}" != model:
        problems.append(f"they are for {figures['model']} {figures['version']}, not {model}")
    if not raw:
        problems.append(f"they have no {runtime} row")
    if problems:
        return ["The runtime figures do not fit this service: " + "; ".join(problems) + ".", ""]
    nearest = min(raw, key=lambda b: abs(b - busiest.mean_batch))
    ratio = busiest.images_per_second / raw[nearest]
    verdict = "meets" if ratio >= OVERHEAD_TARGET else "misses"
    return [
        f"HTTP throughput at saturation (mean batch {busiest.mean_batch:.2f}) against the raw "
        f"{runtime} rate at batch {nearest}, from "
        f"`python -m compile benchmark` at {figures['measured_at']}:", "",
        f"| service img/s | raw runtime img/s | ratio (target >= {OVERHEAD_TARGET}) |",
        "|---|---|---|",
        f"| {busiest.images_per_second:.2f} | {raw[nearest]:.2f} | {ratio:.2f} |", "",
        f"The ratio {verdict} the target.", "",
    ]  # fmt: skip


def batching_lines(plan: Plan, loads: dict[str, dict[int, Load]]) -> list[str]:
    lines = [
        "| clients | batching | img/s | mean batch | p50 ms | p95 ms | failed requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients in plan.clients:
        for mode in ("on", "off"):
            r = loads[mode][clients]
            lines.append(
                f"| {clients} | {mode} | {r.images_per_second:.2f} | {r.mean_batch:.2f} | "
                f"{percentile(r.latencies, 50):.0f} | {percentile(r.latencies, 95):.0f} | "
                f"{r.failed} |"
            )
    busiest = max(plan.clients)
    on, off = loads["on"][busiest], loads["off"][busiest]
    lines += [
        "",
        f"With {busiest} clients, batching on answered {on.images_per_second / off.images_per_second:.2f}x "
        f"the images/s of batching off, at {percentile(on.latencies, 95) / percentile(off.latencies, 95):.2f}x "
        "its p95 latency.",
        "",
    ]
    return lines


def machine(load: float) -> str:
    import bentoml
    import onnxruntime

    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else cpu
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load:.1f} at the start: "
        f"other jobs share them); Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}, bentoml {bentoml.__version__}"
    )


def write_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replace the section of `path` whose heading starts with `heading` (or append it)."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    section = "\n".join(lines).rstrip() + "\n"
    found = re.search(rf"^{re.escape(heading)}.*?(?=^## |\Z)", text, re.M | re.S)
    if found:
        rest = text[found.end() :]
        text = text[: found.start()] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.benchmark", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the code, not the machine"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="packages to serve")
    parser.add_argument(
        "--runtime-figures", type=Path, help="JSON from python -m compile benchmark --figures"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    plan = QUICK if args.quick else FULL
    figures = json.loads(args.runtime_figures.read_text()) if args.runtime_figures else None
    started = time.time()
    load = os.getloadavg()[0]  # reported: other jobs on this machine slow the figures
    with tempfile.TemporaryDirectory() as tmp:
        direction, described, loads, person = measure(args.models, plan, figures, Path(tmp))
    busiest = loads["on"][max(plan.clients)]
    side = figures["size"] if figures else None
    resolution = f"{side}x{side}" if side else "the model's native resolution"
    model = f"{described['model']} {described['version']}"
    now = datetime.datetime.now(datetime.UTC)
    write_section(args.out, OVERHEAD, [
        OVERHEAD, "",
        f"Sections 2-4 written by `python -m loadtest.benchmark{' --quick' if args.quick else ''}` "
        f"on {now:%Y-%m-%d %H:%M} UTC in {time.time() - started:.0f} s. Machine: {machine(load)}. "
        f"{direction} ({model}, {described['backend']} {described['device']} "
        f"{described['precision']}); clients post {plan.size}x{plan.size} JPEGs back to back for "
        f"{plan.seconds:g} s per row, translated at {resolution}; batching on is "
        f"CYCLEGAN_MAX_BATCH_SIZE={plan.max_batch}.", "",
        *overhead_lines(described, busiest, figures),
    ])  # fmt: skip
    write_section(args.out, BATCHING, [BATCHING, "", *batching_lines(plan, loads)])
    write_section(args.out, PERSON, [
        PERSON, "",
        f"{plan.person_requests} sequential requests on an idle server (as above): "
        f"p50 {percentile(person, 50):.0f} ms, p95 {percentile(person, 95):.0f} ms.", "",
    ])  # fmt: skip
    log.info("wrote sections 2-4 to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
