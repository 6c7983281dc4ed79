"""`python -m loadtest.benchmark`: the service over HTTP, against the raw runtime's figures.

Starts the service on loopback (batching on, batching off, then as shipped) on `--models` and
measures, as a client only:
2. service overhead: HTTP throughput at saturation / the raw runtime's images/s at the same
   batch size, read from `--runtime-figures` (written by `python -m compile benchmark
   --figures`, just before, in the same `make bench`); requests then ask for the figures'
   resolution (`?resolution=`), so both ran the same shapes;
3. batching: throughput and p50/p95 latency against the number of clients, batching on and off,
   for the default direction and its fast student (`<direction>-fast`) where one is served,
   drawn as a PNG beside BENCHMARKS.md (`--plot`);
   and a mixed load: the busiest row's clients spread over every full model's direction;
4. latency for a person: p50/p95 of one request on an idle server, every direction served;
6. the service as shipped (4 clients) against the reference CycleGAN's test loop, files in and
   files out on real test images (`loadtest/reference.py`; the loop runs in its own process),
   and, where the shipped service runs an INT8 graph, the service on the fp32 graph too.
Writes those sections of BENCHMARKS.md (other sections stay as they are). `--quick` runs every
section on tiny sizes (the test suite does, so this code cannot rot).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from cyclegan.benchmarks_file import machine, write_section
from loadtest import reference
from loadtest.probe import closed_loop, scrape, total
from loadtest.server import ROOT, Server, start_server, stop_server, wait_until

log = logging.getLogger("loadtest.benchmark")
OVERHEAD = "## 2. Service overhead"
BATCHING = "## 3. Batching"
PERSON = "## 4. Latency for a person"
REFERENCE = "## 6. Against the reference loop"
OVERHEAD_TARGET = 0.95  # service / raw runtime at saturation
STUDENT_TARGET = 0.45  # the fast student's idle p50 / its teacher's: a preview worth having
OUTSIDE_TARGET_MS = 15.0  # idle p50 of total - infer (Server-Timing): what is not the model
FAST_SUFFIX = "-fast"  # the distilled student's directions (python -m training distill)


@dataclass(frozen=True)
class Plan:
    size: int  # side of the posted JPEG (the service works at the model's resolution)
    max_batch: int  # CYCLEGAN_MAX_BATCH_SIZE with batching on
    seconds: float  # per measurement
    clients: tuple[int, ...]
    person_requests: int
    turns: int = 3  # rounds of the raw runtime and the saturated service, in turns


# batching on at 4, the service's default and the CPU pod's: on a 2-core CPU larger batches
# gain nothing in the runtime and lose in the service (docs/serving.md, "Batch size")
FULL = Plan(256, 4, 8.0, (1, 2, 4, 8, 16), 30)
QUICK = Plan(64, 2, 1.0, (1, 4), 5, turns=1)


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


def load(
    url: str | list[str], body: bytes, clients: int, seconds: float
) -> tuple[float, list[float], int]:
    """(images/s, latencies in s, errors) with `clients` threads posting back to back; with a
    list of addresses, client i posts to the i-th (round robin): a mixed load."""
    run = closed_loop(url, body, clients, seconds, timeout=120)
    latencies = [answer.seconds for answer in run.answers if answer.status_code == 200]
    return len(latencies) / run.seconds, latencies, len(run.answers) - len(latencies)


def batch_stats(metrics_url: str, direction: str) -> tuple[float, float]:
    """(sum, count) of the service's batch-size histogram for `direction`."""
    samples = scrape(metrics_url)
    return (
        total(samples, "cyclegan_batch_size_sum", direction=direction),
        total(samples, "cyclegan_batch_size_count", direction=direction),
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def pick_direction(directions: dict[str, Any], figures: dict[str, Any] | None) -> str:
    """The runtime figures' model's first direction, else the first direction served."""
    names = sorted(directions)
    if figures is not None:
        names = [n for n in names if directions[n]["model"] == figures["model"]] or names
    return names[0]


@dataclass
class MixedLoad:
    """Clients spread over every full model's direction at once, batching on."""

    load: Load  # all directions together (its mean_batch: images per forward pass)
    mean_batch: dict[str, float]  # direction -> images per forward pass


@dataclass
class Measured:
    described: dict[str, dict[str, Any]]  # direction -> its /directions entry
    loads: dict[str, dict[str, dict[int, Load]]]  # direction -> batching on/off -> clients
    person: dict[str, list[float]]  # direction -> one-at-a-time latencies (s)
    phases: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # Server-Timing, ms
    mixed: MixedLoad | None = None
    worker: Load | None = None  # the default's busiest row, CYCLEGAN_GENERATOR=worker
    turns: list[tuple[float, float]] = field(default_factory=list)  # (raw, service) img/s

    @property
    def default(self) -> str:
        return next(iter(self.described))


def measure(models: Path, plan: Plan, figures: dict[str, Any] | None, workdir: Path) -> Measured:
    """Loads for the default direction and its fast student, with batching on and off."""
    body = jpeg(plan.size, 1)
    measured = Measured({}, {}, {})
    for mode, batch_size in (("on", plan.max_batch), ("off", 1)):
        server = start_server(models, workdir / f"batching-{mode}", bench_env(batch_size))
        try:
            wait_until(server, "/readyz", 200)
            served = httpx.get(f"{server.url}/directions").json()["directions"]
            default = pick_direction(served, figures)
            for direction in [default, default + FAST_SUFFIX]:
                if direction not in served:
                    continue
                measured.described[direction] = served[direction]
                url = f"{server.url}/translate/{direction}"
                if figures is not None:
                    url += f"?resolution={figures['size']}"
                load(url, body, 2, min(2.0, plan.seconds))  # warm-up
                if mode == "on":
                    measured.person[direction], measured.phases[direction] = one_at_a_time(
                        url, body, plan.person_requests
                    )
                loads = measured.loads.setdefault(direction, {}).setdefault(mode, {})
                for clients in plan.clients:
                    loads[clients] = timed_load(server, url, direction, body, clients, plan)
                    log.info(
                        "%s, batching %s, %d clients: %.2f img/s, mean batch %.2f, %d errors",
                        direction, mode, clients, loads[clients].images_per_second,
                        loads[clients].mean_batch, loads[clients].failed,
                    )  # fmt: skip
            if mode == "on":
                for direction in sorted(set(served) - set(measured.person)):  # every direction
                    url = f"{server.url}/translate/{direction}"
                    load(url, body, 1, min(1.0, plan.seconds))  # warm-up
                    measured.person[direction], measured.phases[direction] = one_at_a_time(
                        url, body, plan.person_requests
                    )
                for direction in [default, default + FAST_SUFFIX]:  # as the page's preview asks
                    if direction in served:
                        url = f"{server.url}/translate/{direction}?format=jpeg"
                        key = direction + JPEG_ANSWER
                        measured.person[key], measured.phases[key] = one_at_a_time(
                            url, body, plan.person_requests
                        )
                measured.mixed = mixed_load(server, served, body, plan)
                measured.turns = raw_and_service_in_turns(
                    models, default, served[default], server.url, body, plan,
                    figures["size"] if figures else served[default]["native_resolution"],
                )  # fmt: skip
        finally:
            stop_server(server)
    measured.worker = worker_generator_load(models, plan, figures, workdir, body)
    return measured


def raw_and_service_in_turns(
    models: Path, direction: str, described: dict[str, Any], server_url: str, body: bytes,
    plan: Plan, size: int,
) -> list[tuple[float, float]]:  # fmt: skip
    """(raw runtime, saturated service) images/s, timed in turns: the CPU's speed drifts
    between minutes, and a ratio of figures from the same minutes does not see the drift.
    The runtime runs at the service's largest batch, in a process of its own."""
    folder = package_folder(models, described["model"])
    command = [
        sys.executable, "-m", "compile", "rate", "--package", str(folder),
        "--direction", direction, "--batch", str(plan.max_batch),
        "--seconds", str(plan.seconds), "--size", str(size),
    ]  # fmt: skip
    url = f"{server_url}/translate/{direction}?resolution={size}"
    turns = []
    for _ in range(plan.turns):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        raw = float(json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"])
        service, _, _ = load(url, body, max(plan.clients), plan.seconds)
        log.info("in turns: raw %.2f img/s, service %.2f img/s", raw, service)
        turns.append((raw, service))
    return turns


def bench_env(batch_size: int, generator: str = "in-process") -> dict[str, str]:
    return {
        "CYCLEGAN_BACKEND": "onnxruntime", "CYCLEGAN_MAX_BATCH_SIZE": str(batch_size),
        "CYCLEGAN_GENERATOR": generator,
        # a latency goal every batch can meet: saturation is measured, not load shedding
        # (the request timeout must exceed it: the service checks the two together)
        "CYCLEGAN_MAX_CONCURRENCY": "256", "CYCLEGAN_MAX_LATENCY_MS": "60000",
        "CYCLEGAN_REQUEST_TIMEOUT_S": "120",
    }  # fmt: skip


def worker_generator_load(
    models: Path, plan: Plan, figures: dict[str, Any] | None, workdir: Path, body: bytes
) -> Load:
    """The default direction's busiest row again, with the generator in worker processes of
    its own: what the hop costs at saturation."""
    server = start_server(models, workdir / "worker", bench_env(plan.max_batch, "worker"))
    try:
        wait_until(server, "/readyz", 200)
        served = httpx.get(f"{server.url}/directions").json()["directions"]
        direction = pick_direction(served, figures)
        url = f"{server.url}/translate/{direction}"
        if figures is not None:
            url += f"?resolution={figures['size']}"
        load(url, body, 2, min(2.0, plan.seconds))  # warm-up
        busiest = timed_load(server, url, direction, body, max(plan.clients), plan)
    finally:
        stop_server(server)
    log.info(
        "%s, generator worker: %.2f img/s, mean batch %.2f",
        direction, busiest.images_per_second, busiest.mean_batch,
    )  # fmt: skip
    return busiest


def timed_load(
    server: Server, url: str, direction: str, body: bytes, clients: int, plan: Plan
) -> Load:
    """`clients` posting back to back for the plan's seconds, with the service's mean batch
    over that time (from its batch-size histogram)."""
    before = batch_stats(server.metrics_url, direction)
    rate, latencies, errors = load(url, body, clients, plan.seconds)
    after = batch_stats(server.metrics_url, direction)
    passes = after[1] - before[1]
    mean_batch = (after[0] - before[0]) / passes if passes else float("nan")
    return Load(rate, latencies, mean_batch, errors)


def mixed_load(server: Server, served: dict[str, Any], body: bytes, plan: Plan) -> MixedLoad | None:
    """The busiest row's clients spread over every full model's direction (no students)."""
    directions = sorted(d for d in served if not d.endswith(FAST_SUFFIX))
    if len(directions) < 2:
        return None
    clients = max(plan.clients)
    before = {d: batch_stats(server.metrics_url, d) for d in directions}
    rate, latencies, errors = load(
        [f"{server.url}/translate/{d}" for d in directions], body, clients, plan.seconds
    )
    passes = {}
    for direction in directions:
        after = batch_stats(server.metrics_url, direction)
        passes[direction] = (after[0] - before[direction][0], after[1] - before[direction][1])
    images, count = (sum(p[i] for p in passes.values()) for i in (0, 1))
    mean = {d: (n / c if c else float("nan")) for d, (n, c) in passes.items()}
    log.info("mixed, %d clients over %s: %.2f img/s", clients, ", ".join(directions), rate)
    return MixedLoad(Load(rate, latencies, images / count if count else float("nan"), errors), mean)


def mixed_lines(plan: Plan, measured: Measured) -> list[str]:
    mixed = measured.mixed
    if mixed is None:
        return []
    busiest = max(plan.clients)
    single = measured.loads[measured.default]["on"][busiest]
    per_direction = ", ".join(f"{d} {b:.2f}" for d, b in mixed.mean_batch.items())
    return [
        f"**Mixed directions.** The batcher takes up to {plan.max_batch} waiting images from one "
        "queue, whatever their direction, and the generator runs one forward pass per direction "
        "in that batch (serving/service.py, `run_batch`): an image never waits for a batch of "
        f"its own direction to fill, and k directions in one batch cost k passes. {busiest} "
        f"clients spread round robin over {len(mixed.mean_batch)} directions: "
        f"{mixed.load.images_per_second:.2f} img/s, p50 {percentile(mixed.load.latencies, 50):.0f}"
        f" ms, p95 {percentile(mixed.load.latencies, 95):.0f} ms, {mixed.load.failed} failed; "
        f"images per forward pass {mixed.load.mean_batch:.2f} ({per_direction}), against "
        f"{single.mean_batch:.2f} and {single.images_per_second:.2f} img/s with all "
        f"{busiest} clients on {measured.default} alone.",
        "",
    ]


def one_at_a_time(
    url: str, body: bytes, requests: int
) -> tuple[list[float], list[dict[str, float]]]:
    """(latencies in s, each answer's Server-Timing phases in ms), one request at a time."""
    latencies, phases = [], []
    with httpx.Client(timeout=60) as http:
        for _ in range(requests):
            began = time.perf_counter()
            answer = http.post(url, content=body, headers={"content-type": "image/jpeg"})
            answer.raise_for_status()
            latencies.append(time.perf_counter() - began)
            phases.append(server_timing(answer.headers.get("server-timing", "")))
    return latencies, phases


def server_timing(header: str) -> dict[str, float]:
    """`read;dur=0.4, decode;dur=1.9, ...` as {phase: ms}."""
    found = re.findall(r"([a-z]+);dur=([0-9.]+)", header)
    return {name: float(ms) for name, ms in found}


PHASE_COLUMNS = ("read", "decode", "queue", "hop", "infer", "encode", "total")
JPEG_ANSWER = ", JPEG answer"  # a person-latency row asking ?format=jpeg (the page's preview)


def student_ratio_lines(measured: Measured) -> list[str]:
    """The fast student's p50 as a share of its teacher's, with PNG and with JPEG answers."""
    default = measured.default.removesuffix(FAST_SUFFIX)
    lines = []
    for answer in ("", JPEG_ANSWER):
        teacher, student = default + answer, default + FAST_SUFFIX + answer
        if teacher in measured.person and student in measured.person:
            ratio = percentile(measured.person[student], 50) / percentile(
                measured.person[teacher], 50
            )
            kind = "JPEG answers (the page's preview)" if answer else "PNG answers (the default)"
            verdict = "meets" if ratio <= STUDENT_TARGET else "misses"
            lines.append(
                f"- {student} p50 / {teacher} p50: {ratio:.2f}, {kind}: {verdict} the target "
                f"(<= {STUDENT_TARGET})."
            )
    return lines


def phase_lines(measured: Measured) -> list[str]:
    """p50 of each Server-Timing phase per direction, and of what is not the model."""
    lines = [
        "| direction | client p50 | "
        + " | ".join(PHASE_COLUMNS)
        + f" | total - infer (target <= {OUTSIDE_TARGET_MS:g}) |",
        "|---|---|" + "---|" * (len(PHASE_COLUMNS) + 1),
    ]
    for direction, answers in measured.phases.items():
        p50 = {
            phase: float(np.median([a.get(phase, float("nan")) for a in answers]))
            for phase in PHASE_COLUMNS
        }
        outside = float(np.median([a["total"] - a["infer"] for a in answers if "infer" in a]))
        lines.append(
            f"| {direction} | {percentile(measured.person[direction], 50):.1f} | "
            + " | ".join(f"{p50[phase]:.1f}" for phase in PHASE_COLUMNS)
            + f" | {outside:.1f} |"
        )
    return lines


def turns_lines(plan: Plan, turns: list[tuple[float, float]]) -> list[str]:
    """The saturated service and the raw runtime timed in turns, and the verdict on them."""
    if not turns:
        return []
    ratios = [service / raw for raw, service in turns]
    median = float(np.median(ratios))
    verdict = "meets" if median >= OVERHEAD_TARGET else "misses"
    return [
        f"The same two timed in turns, which the CPU's drift between minutes does not reach: "
        f"the raw runtime at batch {plan.max_batch} in a process of its own (`python -m compile "
        f"rate`), then the service with {max(plan.clients)} clients, {plan.seconds:g} s each:",
        "",
        "| turn | raw runtime img/s | service img/s | ratio |", "|---|---|---|---|",
        *(
            f"| {i} | {raw:.2f} | {service:.2f} | {service / raw:.3f} |"
            for i, (raw, service) in enumerate(turns, 1)
        ),
        "",
        f"Median ratio {median:.3f}: it {verdict} the target (>= {OVERHEAD_TARGET}).", "",
    ]  # fmt: skip


def overhead_lines(
    described: dict[str, Any], busiest: Load, figures: dict[str, Any] | None,
    worker: Load | None = None,
) -> list[str]:  # fmt: skip
    """Service throughput at saturation against the raw runtime at the nearest batch size; the
    generator in the front's process (the target's row), and in worker processes."""
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
    rows = [("in the front's process (the default)", busiest)]
    if worker is not None:
        rows.append(("worker processes (CYCLEGAN_GENERATOR=worker)", worker))
    return [
        f"HTTP throughput at saturation against the raw {runtime} rate at batch {nearest}, "
        f"from `python -m compile benchmark` at {figures['measured_at']}:", "",
        f"| generator | mean batch | service img/s | raw runtime img/s | ratio (target >= "
        f"{OVERHEAD_TARGET}) |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {load.mean_batch:.2f} | {load.images_per_second:.2f} | "
            f"{raw[nearest]:.2f} | {load.images_per_second / raw[nearest]:.3f} |"
            for name, load in rows
        ),
        "",
        f"Against section 1's figure, taken minutes earlier, the default's ratio {verdict} the "
        "target.", "",
    ]  # fmt: skip


def batching_lines(plan: Plan, measured: Measured) -> list[str]:
    lines = [
        "| direction | clients | batching | img/s | mean batch | p50 ms | p95 ms | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for direction, modes in measured.loads.items():
        for clients in plan.clients:
            for mode in ("on", "off"):
                r = modes[mode][clients]
                lines.append(
                    f"| {direction} | {clients} | {mode} | {r.images_per_second:.2f} | "
                    f"{r.mean_batch:.2f} | {percentile(r.latencies, 50):.0f} | "
                    f"{percentile(r.latencies, 95):.0f} | {r.failed} |"
                )
    busiest = max(plan.clients)
    lines.append("")
    for direction, modes in measured.loads.items():
        on, off = modes["on"][busiest], modes["off"][busiest]
        lines.append(
            f"- {direction}, {busiest} clients: batching on answered "
            f"{on.images_per_second / off.images_per_second:.2f}x the images/s of batching off, "
            f"at {percentile(on.latencies, 95) / percentile(off.latencies, 95):.2f}x its p95."
        )
    return [*lines, ""]


def plot_clients(path: Path, plan: Plan, measured: Measured) -> None:
    """Throughput and p95 latency against clients: one line per direction and batching mode."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    figure, (rates, p95s) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for direction, modes in measured.loads.items():
        for mode, style in (("on", "-"), ("off", "--")):
            loads = [modes[mode][clients] for clients in plan.clients]
            label = f"{direction}, batching {mode}"
            rates.plot(plan.clients, [r.images_per_second for r in loads], style, marker="o",
                       label=label)  # fmt: skip
            p95s.plot(plan.clients, [percentile(r.latencies, 95) for r in loads], style,
                      marker="o", label=label)  # fmt: skip
    for axes, title in ((rates, "throughput (images/s)"), (p95s, "p95 latency (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(plan.clients, [str(c) for c in plan.clients])
        axes.set_xlabel("clients posting back to back")
        axes.set_title(title)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    rates.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def package_folder(models: Path, name: str) -> Path:
    """The folder under `models` whose model.json names the package `name`."""
    for manifest in sorted(models.glob("*/model.json")):
        if json.loads(manifest.read_text()).get("name") == name:
            return manifest.parent
    raise FileNotFoundError(f"{models}: no package named {name!r}")


def reference_comparison(
    models: Path, measured: Measured, images: list[Path], workdir: Path, rounds: int
) -> list[str]:
    """Section 6: the service as shipped against the reference loop, and, where the shipped
    service runs another precision (INT8), the service on the fp32 graph: the loop's numbers."""
    direction = measured.default
    package = package_folder(models, measured.described[direction]["model"])
    results: dict[str, reference.Comparison] = {}
    for name, settings in (("as-shipped", {}), ("fp32", {"CYCLEGAN_PRECISION": "fp32"})):
        server = start_server(models, workdir / name, settings)
        try:
            wait_until(server, "/readyz", 200)
            served = httpx.get(f"{server.url}/directions").json()["directions"][direction]
            runtime = f"{served['backend']} {served['device']} {served['precision']}"
            if settings and served["precision"] == measured.described[direction]["precision"]:
                break  # as shipped is already fp32: nothing more to compare
            label = "as shipped" if not settings else "fp32 graph (the loop's arithmetic)"
            results[f"{label}: {runtime}"] = reference.compare(
                package, direction, f"{server.url}/translate/{direction}", images,
                workdir / f"reference-{name}", rounds,
            )  # fmt: skip
        finally:
            stop_server(server)
    source = images[0].parent
    return reference.comparison_lines(results, direction, f"{source.parent.name}/{source.name}")


def default_images(quick: bool) -> Path:
    """Horse test images: the whole testA where the data set is beside the checkout."""
    whole = ROOT.parent / "shared" / "data" / "horse2zebra" / "testA"
    return whole if whole.is_dir() and not quick else ROOT / "tests/fixtures/horse2zebra/testA"


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
    parser.add_argument("--images", type=Path, help="section 6's images (default: horse testA)")
    parser.add_argument(
        "--plot", type=Path, help="section 3's PNG (default: benchmarks-clients.png beside --out)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    plan = QUICK if args.quick else FULL
    figures = json.loads(args.runtime_figures.read_text()) if args.runtime_figures else None
    image_dir = args.images or default_images(args.quick)
    images = sorted(p for p in image_dir.iterdir() if p.is_file())
    plot = args.plot or args.out.parent / "benchmarks-clients.png"
    started = time.time()
    load = os.getloadavg()[0]  # reported: other jobs on this machine slow the figures
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(args.models, plan, figures, Path(tmp))
        comparison = reference_comparison(
            args.models, measured, images, Path(tmp), rounds=1 if args.quick else 2
        )
    described = measured.described[measured.default]
    busiest = measured.loads[measured.default]["on"][max(plan.clients)]
    side = figures["size"] if figures else None
    resolution = f"{side}x{side}" if side else "the model's native resolution"
    models = ", ".join(
        f"{direction} ({d['model']} {d['version']}, {d['backend']} {d['device']} {d['precision']})"
        for direction, d in measured.described.items()
    )
    host = machine(load, ["onnxruntime", "bentoml"])
    now = datetime.datetime.now(datetime.UTC)
    write_section(args.out, OVERHEAD, [
        OVERHEAD, "",
        f"Sections 2-4 and 6 written by `python -m loadtest.benchmark"
        f"{' --quick' if args.quick else ''}` on {now:%Y-%m-%d %H:%M} UTC in "
        f"{time.time() - started:.0f} s. Machine: {host}. {models}; clients post "
        f"{plan.size}x{plan.size} JPEGs back to back for {plan.seconds:g} s per row, translated "
        f"at {resolution}; batching on is CYCLEGAN_MAX_BATCH_SIZE={plan.max_batch}.", "",
        *overhead_lines(described, busiest, figures, measured.worker),
        *turns_lines(plan, measured.turns),
    ])  # fmt: skip
    plot_clients(plot, plan, measured)
    relative = os.path.relpath(plot, args.out.parent)
    write_section(args.out, BATCHING, [
        BATCHING, "", f"![throughput and p95 latency against clients]({relative})", "",
        *batching_lines(plan, measured), *mixed_lines(plan, measured),
    ])  # fmt: skip
    write_section(args.out, PERSON, [
        PERSON, "",
        f"{plan.person_requests} sequential requests on an idle server (as above), per direction:",
        "",
        *(
            f"- {direction}: p50 {percentile(person, 50):.0f} ms, "
            f"p95 {percentile(person, 95):.0f} ms."
            for direction, person in measured.person.items()
        ),
        "",
        "Where that time goes, from the answers' `Server-Timing` headers (p50 of each phase, "
        "ms; the client's p50 also holds the loopback HTTP exchange and its client's work):",
        "",
        *phase_lines(measured),
        "",
        *student_ratio_lines(measured),
        "",
    ])  # fmt: skip
    write_section(args.out, REFERENCE, [REFERENCE, "", *comparison])
    log.info("wrote sections 2-4 and 6 to %s, and %s", args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
