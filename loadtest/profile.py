"""Where a saturated service spends its CPU: `python -m loadtest.profile [--env K=V ...]`.

Starts the service on loopback (the shipped settings, plus any `--env`), saturates one
direction with `--clients` threads posting a real test image, and meanwhile
1. reads each server process's CPU seconds from the OS (native threads too: ONNX Runtime's
   workers are not Python threads), per image answered;
2. samples every Python thread with py-spy (`--subprocesses`) and files each sample under the
   first known activity found from the innermost frame out (inference, decode, PNG encode, ...).
Prints both tables as Markdown and, with `--out`, writes them as a section of BENCHMARKS.md.
Needs py-spy (in the dev extra) and permission to read the server's memory (root, or
ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

from cyclegan.benchmarks_file import write_section
from loadtest.benchmark import default_images, load
from loadtest.probe import GENERATOR, is_generator, processes
from loadtest.server import ROOT, start_server, stop_server, wait_until

log = logging.getLogger("loadtest.profile")
HEADING = "## 7. Where the time goes"

# (activity, substrings of a py-spy frame); the first rule to match a frame, innermost first.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("inference (ONNX Runtime)", ("onnxruntime/", "InferenceSession.run")),
    ("image encode", (
        "_save (PIL/ImageFile.py", "PngImagePlugin.py", "JpegImagePlugin.py", "WebPImagePlugin.py",
        "serving/png_writer.py", "encode (serving/image_io.py",
    )),
    ("image decode", ("load (PIL/ImageFile.py", "draft (PIL/", "decode (serving/")),
    ("resize, pad, crop", ("prepare (serving/", "restore (serving/", "resize (PIL/")),
    ("front-generator hop", ("pickle", "serde", "serializ", "io_models")),
    ("HTTP, asyncio, BentoML", (
        "starlette/", "uvicorn/", "h11/", "httptools/", "asyncio/", "anyio/", "bentoml",
        "aiohttp/",
    )),
)  # fmt: skip


@dataclass
class ProcessUse:
    name: str
    cpu_seconds: float


def activity(stack: str) -> str:
    """The activity a collapsed py-spy stack belongs to (frames root;...;leaf)."""
    for frame in reversed(stack.split(";")):
        if frame.startswith("process "):
            continue  # a process's command line says nothing of what it does
        for name, needles in RULES:
            if any(needle in frame for needle in needles):
                return name
    return "other Python"


def process_name(stack: str) -> str:
    """Which server process a stack is from: py-spy nests each child's `process PID:"cmdline"`
    frame under its parent's, so the innermost one names it."""
    frames = [frame for frame in stack.split(";") if frame.startswith("process ")]
    if len(frames) <= 1:
        return "supervisor"  # `python -m serving` itself
    return "generator" if GENERATOR in frames[-1] else "front"


def summarise(raw: str) -> dict[str, collections.Counter[str]]:
    """Samples per activity, per process, from py-spy's raw (collapsed) output."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            counts[process_name(stack)][activity(stack)] += int(number)
    return counts


def cpu_seconds(pid: int) -> dict[int, ProcessUse]:
    """User + system CPU seconds of the server (`pid`) and every child, by pid."""
    found = {}
    for process in processes(pid):
        try:
            times = process.cpu_times()
            generator = is_generator(process)
        except psutil.Error:
            continue
        name = "generator" if generator else "front"
        if process.pid == pid:
            name = "supervisor"
        found[process.pid] = ProcessUse(name, times.user + times.system)
    return found


def find_py_spy() -> str:
    for candidate in (shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError("py-spy is not installed (it comes with the dev extra: make setup)")


def profile(
    models: Path, direction: str, image: Path, clients: int, seconds: float,
    env: dict[str, str], workdir: Path,
) -> tuple[float, dict[str, float], dict[str, collections.Counter[str]]]:  # fmt: skip
    """(images/s, CPU seconds per image by process kind, py-spy samples by process/activity)."""
    py_spy = find_py_spy()
    server = start_server(models, workdir, env)
    try:
        wait_until(server, "/readyz", 200)
        url = f"{server.url}/translate/{direction}"
        body = image.read_bytes()
        load(url, body, clients, 3.0)  # warm-up
        server_pid = server.process.pid
        result: dict[str, float] = {}

        def saturate() -> None:
            rate, _, errors = load(url, body, clients, seconds)
            result.update(rate=rate, errors=errors)

        before = cpu_seconds(server_pid)
        clients_thread = threading.Thread(target=saturate)
        clients_thread.start()
        raw = workdir / "py-spy.txt"
        subprocess.run(
            [py_spy, "record", "--pid", str(server_pid), "--subprocesses", "--format", "raw",
             "--rate", "100", "--duration", str(int(seconds) - 1), "--nonblocking",
             "-o", str(raw)],
            check=True, capture_output=True,
        )  # fmt: skip
        clients_thread.join()
        after = cpu_seconds(server_pid)
    finally:
        stop_server(server)
    answered = result["rate"] * seconds
    per_image: dict[str, float] = collections.defaultdict(float)
    for pid, use in after.items():
        spent = use.cpu_seconds - (before[pid].cpu_seconds if pid in before else 0.0)
        per_image[use.name] += spent / answered
    return result["rate"], dict(per_image), summarise(raw.read_text())


def markdown(
    rate: float, per_image: dict[str, float], samples: dict[str, collections.Counter[str]]
) -> list[str]:
    total = sum(per_image.values())
    lines = [
        f"Saturated: {rate:.2f} img/s. CPU per image answered, by process (from the OS, native "
        "threads included):", "",
        "| process | CPU ms per image | share |", "|---|---|---|",
        *(
            f"| {name} | {seconds * 1000:.1f} | {seconds / total:.0%} |"
            for name, seconds in sorted(per_image.items(), key=lambda item: -item[1])
        ),
        f"| all | {total * 1000:.1f} | 100% |", "",
        "Python threads' samples by activity (py-spy, 100 Hz; ONNX Runtime's own worker threads "
        "are native and not sampled: their time is in the table above):", "",
        "| process | activity | samples | share of the process |", "|---|---|---|---|",
    ]  # fmt: skip
    for process, counter in sorted(samples.items()):
        whole = sum(counter.values())
        for name, count in counter.most_common():
            lines.append(f"| {process} | {name} | {count} | {count / whole:.0%} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.profile", description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--direction", default="horse2zebra")
    parser.add_argument("--image", type=Path, help="the posted image (default: a horse test image)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--env", action="append", default=[], metavar="CYCLEGAN_X=VALUE")
    parser.add_argument("--out", type=Path, help="write the section into this BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    env = dict(item.split("=", 1) for item in args.env)
    image = args.image or sorted(default_images(quick=False).iterdir())[0]
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rate, per_image, samples = profile(
            args.models, args.direction, image, args.clients, args.seconds, env, Path(tmp)
        )
    lines = markdown(rate, per_image, samples)
    sys.stdout.write("\n".join(lines))
    if args.out:
        now = datetime.datetime.now(datetime.UTC)
        settings = " ".join(args.env) or "the shipped settings"
        if "generator" not in per_image:
            settings += " (the generator runs in the front's process)"
        write_section(args.out, HEADING, [
            HEADING, "",
            f"Written by `python -m loadtest.profile` on {now:%Y-%m-%d %H:%M} UTC (load average "
            f"{load_average:.1f} at the start): {args.direction}, {args.clients} clients posting "
            f"{image.name} for {args.seconds:g} s, {settings}.", "",
            *lines,
        ])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
